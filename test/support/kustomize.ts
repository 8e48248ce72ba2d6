/** Renders a kustomize directory with `kubectl kustomize` into plain objects. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { parseAllDocuments } from 'yaml';

export interface K8sObject { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [key: string]: unknown }

/** kubectl on PATH, else the one scripts/kube-build.sh builds. */
export function kubectlPath(): string {
  const built = `${homedir()}/.cache/lazarus/kube/v1.35.4/bin/kubectl`;
  if (process.env.KUBECTL) return process.env.KUBECTL;
  if (existsSync(built)) return built;
  return 'kubectl';
}

export function render(dir: string): K8sObject[] {
  const out = execFileSync(kubectlPath(), ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return parseAllDocuments(out).map((d) => d.toJS() as K8sObject).filter(Boolean);
}

export const OVERLAYS = ['manifests/base', 'manifests/overlays/cert-manager', 'manifests/overlays/second-scheduler', 'manifests/overlays/default-scheduler'];
