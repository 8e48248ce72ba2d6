/**
 * The demo's parts that need a source checkout: its own local control plane and the real-node
 * opening, both built on test/harness and the Kubernetes binaries. Not in the image (Dockerfile):
 * demo/command.ts loads this module lazily, and only without --kubeconfig.
 */
import type { Checkout } from '../environment.js';
import { startLocal } from './local.js';
import { realNodesAct } from './real-nodes.js';
import { realNodePreflight } from '../../test/harness/real-node.js';

export const checkout: Checkout = { startLocal, realNodesAct, realNodePreflight };
