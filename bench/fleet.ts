/**
 * The fleet of realistic nodes the extender and memory benches share: labels, conditions and
 * 20 images each, mostly restore-capable, as in a cluster that runs Lazarus.
 */
import { goodNode, wireNode } from '../test/unit/extender-fixtures.js';

/** Wire Nodes (metadata, spec, status); a fifth fail some restore rule. */
export function nodeFleet(n: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => {
    const name = `node-${String(i).padStart(5, '0')}`;
    switch (i % 10) {
      case 0: return goodNode(name, { arch: 'arm64' }, i);
      case 1: return wireNode({ name }, i);
      case 2: return goodNode(name, { criu: '40200', kernel: '6.8.12-1-generic' }, i);
      case 3: return goodNode(name, { kernel: '6.5.0-1-generic', images: [] }, i);
      default: return goodNode(name, {}, i);
    }
  });
}
