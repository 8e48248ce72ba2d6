/**
 * CertStore over the Kubernetes API (kube/client.ts). Only request shapes and error mapping
 * live here; every decision stays in the manager.
 */
import type { KubeClient } from '../kube/client.js';
import { KubeError, isNotFound } from '../kube/client.js';
import { StoreConflict, type CertStore, type PatchOperation, type SecretObject, type WebhookConfiguration, type WebhookKind } from './store.js';

const webhooksPath = (kind: WebhookKind): string => `/apis/admissionregistration.k8s.io/v1/${kind}webhookconfigurations`;
const enc = encodeURIComponent;

function secretsPath(namespace: string): string { return `/api/v1/namespaces/${enc(namespace)}/secrets`; }

async function orUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try { return await p; } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** 409 is a lost race; 422 is what the API server answers when a JSON-patch `test` fails. */
function conflicts(err: unknown, statuses: readonly number[]): never {
  if (err instanceof KubeError && statuses.includes(err.status)) throw new StoreConflict(err.message);
  throw err;
}

export function createKubeStore(client: KubeClient): CertStore {
  return {
    getSecret: (namespace, name) => orUndefined(client.request<SecretObject>('GET', `${secretsPath(namespace)}/${enc(name)}`)),
    async createSecret(secret) {
      const namespace = secret.metadata.namespace ?? '';
      try {
        return await client.request<SecretObject>('POST', secretsPath(namespace), { body: { apiVersion: 'v1', kind: 'Secret', ...secret } });
      } catch (err) { return conflicts(err, [409]); }
    },
    async updateSecret(secret) {
      if (!secret.metadata.resourceVersion) throw new Error('updateSecret needs metadata.resourceVersion');
      const namespace = secret.metadata.namespace ?? '';
      try {
        return await client.request<SecretObject>('PUT', `${secretsPath(namespace)}/${enc(secret.metadata.name)}`, { body: { apiVersion: 'v1', kind: 'Secret', ...secret } });
      } catch (err) { return conflicts(err, [409]); }
    },
    getWebhookConfig: (name, kind = 'mutating') => orUndefined(client.request<WebhookConfiguration>('GET', `${webhooksPath(kind)}/${enc(name)}`)),
    async patchWebhookConfig(name, ops: readonly PatchOperation[], kind = 'mutating') {
      try {
        return await client.request<WebhookConfiguration>('PATCH', `${webhooksPath(kind)}/${enc(name)}`, { body: ops, contentType: 'application/json-patch+json' });
      } catch (err) { return conflicts(err, [409, 422]); }
    },
  };
}
