/**
 * Which checkpoint images the webhook may put into a pod (issue 13, trust). A Checkpoint names
 * an image that will run inside someone else's pod, so its `spec.image` is used only when it is
 * pinned by digest and lives under the registry prefix the pod's policy pushes to: anybody who
 * can write a Checkpoint can then only point at content the agents pushed, never at an image of
 * their choosing. Pure.
 */

/** In a cold start's reason: a Checkpoint named an image Lazarus does not trust (the controller warns). */
export const NOT_TRUSTED = 'is not trusted';

/** `name@sha256:<64 hex>`: the name without a tag (the digest alone says what runs). */
const DIGEST_REF = /^([^@\s]+)@sha256:[0-9a-f]{64}$/;
/** A registry host (with optional port) or a path component, as the distribution spec allows them. */
const HOST = /^[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::\d+)?$/;
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** The prefix the agents push to for this policy, else the webhook's `--registry`; '' when neither is set. */
export function trustedPrefix(policyRegistry: string, defaultRegistry: string): string {
  return (policyRegistry || defaultRegistry).trim().replace(/\/+$/, '');
}

/**
 * Undefined when `image` may be restored under `prefix`; otherwise why not, in words an operator
 * can act on. The prefix matches on a path boundary: `r.example/a` trusts `r.example/a/x@…`,
 * never `r.example/ab/x@…`.
 */
export function untrustedImage(image: string, prefix: string): string | undefined {
  if (!prefix) return 'no trusted registry is configured (set spec.checkpoint.registry in the RestorePolicy, or the webhook\'s --registry)';
  const name = DIGEST_REF.exec(image)?.[1];
  if (name === undefined) return `image ${image} is not a digest reference (…@sha256:<64 hex>)`;
  if (!name.startsWith(`${prefix}/`)) return `image ${image} is not under the trusted registry prefix ${prefix}/`;
  if (!isImageName(name)) return `image ${image} is not a well-formed image name`;
  return undefined;
}

/** `host[:port]/component/…`: no tag, no empty or `..` components that could step outside the prefix. */
function isImageName(name: string): boolean {
  const [host = '', ...path] = name.split('/');
  return HOST.test(host) && path.length > 0 && path.every((c) => COMPONENT.test(c));
}
