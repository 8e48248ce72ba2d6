/**
 * What `npm run cluster` starts besides the control plane (see ClusterHook in cluster-cli.ts):
 * - by default, Lazarus' webhook and extender in this process, registered with the cluster
 *   (fake nodes: pods are placed, never run);
 * - with `--real-node`, a registry and three real nodes (real-node.ts); the kube-scheduler
 *   reaches the extender through its Service once Lazarus is installed into the cluster.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ClusterHook } from './cluster-cli.js';
import { freePort } from './processes.js';
import { startLazarus } from './lazarus.js';
import { startRealCluster, type RealCluster, type RealClusterOptions } from './real-node.js';

/** The extender as manifests/overlays/default-scheduler configures it: behind its Service. */
export const SERVICE_EXTENDER = {
  urlPrefix: 'http://lazarus-extender.lazarus-system.svc:8888',
  nodeCacheCapable: true, ignorable: true, weight: 5, httpTimeout: '2s',
} as const;

export function inProcessLazarusHook(): ClusterHook {
  let port = 0;
  return {
    name: 'webhook and extender',
    async prepare(options) {
      port = await freePort();
      return { ...options, extenders: [...(options.extenders ?? []), { urlPrefix: `http://127.0.0.1:${String(port)}`, nodeCacheCapable: true, ignorable: true }] };
    },
    async start(cp) {
      const { webhook, extender } = await startLazarus(cp.client, port);
      return { async stop() { await webhook.stop(); await extender.stop(); } };
    },
  };
}

/**
 * Real nodes; `onReady` sees the cluster (the tests and `--install` put Lazarus on it). The
 * API server resolves Services to endpoints (`--enable-aggregator-routing`), as there is no
 * kube-proxy on the host: webhooks behind a Service work as in any cluster.
 */
export function realNodeHook(options: RealClusterOptions & { onReady?: (cluster: RealCluster) => Promise<void> } = {}): ClusterHook {
  return {
    name: 'real nodes',
    prepare(cp) {
      return {
        ...cp,
        extraApiServerArgs: [...(cp.extraApiServerArgs ?? []), '--enable-aggregator-routing=true'],
        extenders: [...(cp.extenders ?? []), SERVICE_EXTENDER],
      };
    },
    async start(cp) {
      const cluster = await startRealCluster(cp, options);
      try {
        await writeFile(path.join(cp.dir, 'registry'), `${cluster.registry}\n`);
        await options.onReady?.(cluster);
      } catch (err) {
        await cluster.stop();
        throw err;
      }
      return cluster;
    },
  };
}
