/**
 * Where certificates live: a Secret, and the caBundle of the webhook configurations (the
 * MutatingWebhookConfiguration for pods, the ValidatingWebhookConfiguration of the same name for
 * evictions). The
 * manager only sees this interface. Two implementations: `createKubeStore` (kube-store.ts, a
 * thin adapter over kube/client.ts) and `MemoryStore` below, a fake that enforces the API
 * server's optimistic concurrency (create of an existing name and update with a stale
 * resourceVersion both conflict), so races can be tested without a cluster.
 */
import jsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface SecretObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  type?: string;
  /** base64 values, as on the wire. */
  data?: Record<string, string>;
}

export interface WebhookClientConfig { caBundle?: string; url?: string; service?: unknown }
export interface Webhook { name: string; clientConfig?: WebhookClientConfig; [k: string]: unknown }
export interface WebhookConfiguration {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  webhooks?: Webhook[];
}

export type PatchOperation = Operation;

/** Which admissionregistration.k8s.io/v1 resource: mutatingwebhookconfigurations or validatingwebhookconfigurations. */
export type WebhookKind = 'mutating' | 'validating';

/** The write lost a race (409, or a failed JSON-patch `test`): read again and decide again. */
export class StoreConflict extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreConflict';
  }
}

export interface CertStore {
  getSecret(namespace: string, name: string): Promise<SecretObject | undefined>;
  /** Throws StoreConflict when the Secret already exists. */
  createSecret(secret: SecretObject): Promise<SecretObject>;
  /** `metadata.resourceVersion` is required; throws StoreConflict when it is stale. */
  updateSecret(secret: SecretObject): Promise<SecretObject>;
  getWebhookConfig(name: string, kind?: WebhookKind): Promise<WebhookConfiguration | undefined>;
  /** RFC 6902 patch; throws StoreConflict when a `test` operation fails. `kind` defaults to mutating. */
  patchWebhookConfig(name: string, ops: readonly PatchOperation[], kind?: WebhookKind): Promise<WebhookConfiguration>;
}

const webhookKey = (kind: WebhookKind, name: string): string => `${kind}/${name}`;

/** In-memory fake with the API server's concurrency rules. Counts conflicts so tests can prove a race happened. */
export class MemoryStore implements CertStore {
  private readonly secrets = new Map<string, SecretObject>();
  private readonly webhooks = new Map<string, WebhookConfiguration>();
  private version = 0;
  conflicts = 0;
  writes = 0;

  private nextVersion(): string { return String(++this.version); }

  async getSecret(namespace: string, name: string): Promise<SecretObject | undefined> {
    await Promise.resolve();
    const s = this.secrets.get(`${namespace}/${name}`);
    return s && structuredClone(s);
  }

  async createSecret(secret: SecretObject): Promise<SecretObject> {
    await Promise.resolve();
    const key = `${secret.metadata.namespace ?? ''}/${secret.metadata.name}`;
    if (this.secrets.has(key)) { this.conflicts++; throw new StoreConflict(`secrets "${secret.metadata.name}" already exists`); }
    const stored = structuredClone({ ...secret, metadata: { ...secret.metadata, resourceVersion: this.nextVersion() } });
    this.secrets.set(key, stored);
    this.writes++;
    return structuredClone(stored);
  }

  async updateSecret(secret: SecretObject): Promise<SecretObject> {
    await Promise.resolve();
    const key = `${secret.metadata.namespace ?? ''}/${secret.metadata.name}`;
    const current = this.secrets.get(key);
    if (!current) throw new Error(`secrets "${secret.metadata.name}" not found`);
    if (!secret.metadata.resourceVersion) throw new Error('update without resourceVersion (the manager must always send one)');
    if (secret.metadata.resourceVersion !== current.metadata.resourceVersion) {
      this.conflicts++;
      throw new StoreConflict(`secrets "${secret.metadata.name}": the object has been modified`);
    }
    const stored = structuredClone({ ...secret, metadata: { ...secret.metadata, resourceVersion: this.nextVersion() } });
    this.secrets.set(key, stored);
    this.writes++;
    return structuredClone(stored);
  }

  async getWebhookConfig(name: string, kind: WebhookKind = 'mutating'): Promise<WebhookConfiguration | undefined> {
    await Promise.resolve();
    const w = this.webhooks.get(webhookKey(kind, name));
    return w && structuredClone(w);
  }

  async patchWebhookConfig(name: string, ops: readonly PatchOperation[], kind: WebhookKind = 'mutating'): Promise<WebhookConfiguration> {
    await Promise.resolve();
    const current = this.webhooks.get(webhookKey(kind, name));
    if (!current) throw new Error(`${kind}webhookconfigurations "${name}" not found`);
    let next: WebhookConfiguration;
    try {
      next = jsonPatch.applyPatch(structuredClone(current), ops, true, false).newDocument;
    } catch (err) {
      if (err instanceof jsonPatch.JsonPatchError && err.name === 'TEST_OPERATION_FAILED') { this.conflicts++; throw new StoreConflict(err.message); }
      throw err;
    }
    next.metadata.resourceVersion = this.nextVersion();
    this.webhooks.set(webhookKey(kind, name), next);
    this.writes++;
    return structuredClone(next);
  }

  /** Test setup and "someone else" edits: stores the object as given (a new resourceVersion). */
  putWebhookConfig(config: WebhookConfiguration, kind: WebhookKind = 'mutating'): void {
    this.webhooks.set(webhookKey(kind, config.metadata.name), structuredClone({ ...config, metadata: { ...config.metadata, resourceVersion: this.nextVersion() } }));
  }

  /** Test helper: replace a Secret's data behind the manager's back. */
  putSecretData(namespace: string, name: string, data: Record<string, string>): void {
    const key = `${namespace}/${name}`;
    const current = this.secrets.get(key);
    const base: SecretObject = current ?? { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'kubernetes.io/tls' };
    this.secrets.set(key, structuredClone({ ...base, data, metadata: { ...base.metadata, resourceVersion: this.nextVersion() } }));
  }

  secretCount(): number { return this.secrets.size; }
}
