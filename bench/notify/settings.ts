import { PAGING_REPEAT_INTERVAL, ROUTE_TIMING } from "../../notifier/alertmanager/config.js";
import type { Timing } from "./system.js";

/** The shipped grouping (deploy/alertmanager/alertmanager.yml, fanwatch start's): group_wait 10s, group_interval 1m. */
export const SHIPPED_TIMING: Timing = { ...ROUTE_TIMING, paging_repeat_interval: PAGING_REPEAT_INTERVAL };

/** No grouping wait: the Alertmanager path's own cost (what the shipped 10 s comes on top of). */
export const NO_WAIT_TIMING: Timing = { ...SHIPPED_TIMING, group_wait: "0s", group_interval: "5s" };

/**
 * The faults and the 1,000 fans: a first notification 1 s after the alert arrives, a resolve within
 * 5 s, repeats as shipped (4 h, 1 h for pages: none within a run, so a second notification of an
 * episode is a duplicate, never a repeat).
 */
export const FAULT_TIMING: Timing = { ...SHIPPED_TIMING, group_wait: "1s", group_interval: "5s" };

export interface Settings {
  latency: {
    /** Transitions a second, each a new fan's alarm, for `seconds`, after a second's warm-up. */
    rate: number;
    seconds: number;
  };
  faults: {
    /** Transitions a second of the episode load (alarms and clears: a new fan's alarm, or an old one's clear). */
    rate: number;
    /**
     * How long each episode stays open. Longer than group_wait plus any hold-up a fault makes: an
     * alert that opens and resolves within one group_wait is never notified (Alertmanager's rule).
     */
    episodeSeconds: number;
    /** The killed notifier's scenario: longer, as the message in flight comes back only after JetStream's ack wait (15 s). */
    killEpisodeSeconds: number;
    /** Load before the fault, and after it before new episodes stop. */
    beforeMs: number;
    afterMs: number;
    /** How long the direct webhook's receiver is down. */
    receiverDownMs: number;
    /** How long Alertmanager and NATS are down in their restarts. */
    restartDownMs: number;
  };
  nextEpisode: {
    fans: number;
    /** From a fan's resolve notification to its next alarm: within the 5 resends an ended alert is sent again. */
    gapSeconds: number;
  };
  scale: {
    fans: number;
    /** Publishes a second while opening, and while clearing. */
    rate: number;
  };
  /** ALERTMANAGER_RESEND in the faults and the 1,000 fans (the latency runs the default, 1m). */
  resend: string;
  /** After everything arrived: time for late duplicates (a redelivery, a resend's re-notification) to show. */
  settleMs: number;
  /** Longest wait, after the load ended, for everything to arrive. */
  drainCapMs: number;
}

/** The figures: 20/s for 15 s, the receiver down 60 s, 1,000 fans. */
export const FULL: Settings = {
  latency: { rate: 20, seconds: 15 },
  faults: {
    rate: 10,
    episodeSeconds: 25,
    killEpisodeSeconds: 25,
    beforeMs: 15_000,
    afterMs: 15_000,
    receiverDownMs: 60_000,
    restartDownMs: 5_000,
  },
  nextEpisode: { fans: 20, gapSeconds: 15 },
  scale: { fans: 1_000, rate: 500 },
  resend: "10s",
  // A resend (10 s) and a group_interval (5 s) after the last arrival, and more than JetStream's ack wait (15 s).
  settleMs: 17_000,
  drainCapMs: 150_000,
};

/** --short: the same scenarios, shorter (the receiver down 10 s). */
export const SHORT: Settings = {
  latency: { rate: 20, seconds: 5 },
  faults: {
    rate: 10,
    episodeSeconds: 8,
    killEpisodeSeconds: 20,
    beforeMs: 3_000,
    afterMs: 3_000,
    receiverDownMs: 10_000,
    restartDownMs: 2_000,
  },
  nextEpisode: { fans: 10, gapSeconds: 10 },
  scale: { fans: 1_000, rate: 500 },
  resend: "10s",
  settleMs: 6_000,
  drainCapMs: 90_000,
};
