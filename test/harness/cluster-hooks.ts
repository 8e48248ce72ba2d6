/**
 * What `npm run cluster` starts besides the control plane. Add Lazarus' webhook and extender
 * here as hooks (see ClusterHook in cluster-cli.ts): `prepare` may reserve a port and add an
 * extender to the scheduler configuration; `start` runs once the control plane answers.
 */
import type { ClusterHook } from './cluster-cli.js';

export const clusterHooks: ClusterHook[] = [];
