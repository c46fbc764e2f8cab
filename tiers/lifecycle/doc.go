// Package lifecycle is chronicle-tier's library: the policies that age partitions through
// the tiers (hot -> warm -> cold -> remote), the planner, the one move mechanism every
// policy uses, recovery of interrupted moves, and the optional parquet deriver.
//
// There is no manifest: the tier roots are the state. A move is made safe by its order:
// the destination is completed first (meta.json, index/, derived/, and the book last, each
// file written under a temporary name, fsynced, renamed, and its directory fsynced), and
// only then is the source removed (the book first, then the rest). So the resolver
// (package tiers) always finds one complete copy, and a crash at any point leaves either
// the source alone, or two identical complete copies, which the next scan's Recover
// finishes (or rolls back if the lower copy is damaged). docs/chronicle-tier.md walks through every
// step and what a crash there leaves.
package lifecycle
