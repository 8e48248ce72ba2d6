/**
 * Acting as a ServiceAccount against the local control plane: a token from the TokenRequest API
 * (bound to a pod when given, as a projected token is) and a kubeconfig that uses only it.
 */
import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import type { KubeClient } from '../../kube/client.js';

export interface BoundPod { name: string; uid: string }

export async function serviceAccountToken(client: KubeClient, namespace: string, serviceAccount: string, pod?: BoundPod): Promise<string> {
  const review = await client.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, {
    body: {
      apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
      spec: { expirationSeconds: 3600, ...(pod ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.name, uid: pod.uid } } : {}) },
    },
  });
  return review.status.token;
}

/** Writes a kubeconfig for `server` (trusting `caPem`) that authenticates with `token` alone; returns `file`. */
export async function writeTokenKubeconfig(file: string, server: string, caPem: string, user: string, token: string): Promise<string> {
  await writeFile(file, stringify({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: 'lazarus', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: 'lazarus', context: { cluster: 'lazarus', user } }],
    'current-context': 'lazarus',
  }), { mode: 0o600 });
  return file;
}
