import type { GateResult } from "./schemas.js";

/**
 * The promotion gates (docs/models.md, "Promotion gates"): what `fanwatch model promote` checks
 * before it moves a site's pointer to a candidate. Placeholder until the gates land: no gate yet.
 */
export interface PromotionQuestion {
  site: string;
  /** The active model's id and the candidate's. */
  active: string;
  candidate: string;
}

/** The gates' verdicts on the candidate, each with its numbers; promote refuses if any did not pass. */
export type PromotionGates = (question: PromotionQuestion) => Promise<GateResult[]>;
