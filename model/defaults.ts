/** The reference design's training settings (docs/architecture.md, "The reference design"), the defaults of `fanwatch train`. */
export const TRAIN_DEFAULTS = { epochs: 250, batchSize: 32, seed: 42, testSplit: 0.33, learningRate: 0.001 } as const;
