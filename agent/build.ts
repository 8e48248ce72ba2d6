/**
 * Archive → pushed OCI checkpoint image. Two passes over the archive: the first hashes the
 * uncompressed tar (the layer, as is: no re-tar, no compression — see bench/RESULTS.md) and
 * reads config.dump/spec.dump; the second streams the same bytes to the registry, skipped when
 * the registry already has the blob. Memory does not depend on the archive's size.
 */
import { CONFIG_DUMP, SPEC_DUMP, parseArchiveMeta, type ArchiveMeta } from './archive-meta.js';
import { ArchiveError, DigestStream, openTar, scanArchive } from './archive.js';
import { MEDIA_MANIFEST, buildImage, checkpointAnnotations, type HostFacts } from './oci-image.js';
import { RegistryError, formatRef, type RegistryClient } from './registry.js';

export interface BuildResult {
  /** registry/repository@sha256:… */
  image: string;
  manifestDigest: string;
  layer: { digest: string; size: number; uploaded: boolean };
  meta: ArchiveMeta;
  annotations: Record<string, string>;
}

export interface ScannedArchive { digest: string; size: number; meta: ArchiveMeta }

/** First pass: digest, size and metadata; throws ArchiveError for anything that is not a checkpoint. */
export async function inspectArchive(path: string, signal?: AbortSignal): Promise<ScannedArchive> {
  const scan = await scanArchive(path, [CONFIG_DUMP, SPEC_DUMP], signal);
  if (!scan.topLevel.has('checkpoint')) throw new ArchiveError('no checkpoint/ directory in the archive: not a container checkpoint');
  const meta = parseArchiveMeta(scan.files.get(CONFIG_DUMP)?.toString('utf8'), scan.files.get(SPEC_DUMP)?.toString('utf8'));
  return { digest: scan.digest, size: scan.size, meta };
}

export interface PushOptions {
  archive: string;
  client: RegistryClient;
  host: HostFacts;
  /** Tag to push under; the manifest digest is always the identity. */
  tag?: string;
  signal?: AbortSignal;
  scanned?: ScannedArchive;
}

export async function buildAndPush(opts: PushOptions): Promise<BuildResult> {
  const { client } = opts;
  const scanned = opts.scanned ?? await inspectArchive(opts.archive, opts.signal);
  const annotations = checkpointAnnotations(scanned.meta, opts.host);
  const image = buildImage({ digest: scanned.digest, size: scanned.size }, opts.host.arch, annotations, scanned.meta.checkpointedTime);

  let uploaded = false;
  if (!await client.hasBlob(scanned.digest)) {
    await client.uploadBlob(scanned.digest, scanned.size, () => {
      // Second pass. Re-hashing guards against an archive rewritten between the passes: the
      // registry would reject the digest too, but this names the cause.
      const check = new DigestStream({ digest: scanned.digest, size: scanned.size });
      void openTar(opts.archive, opts.signal).then(({ stream }) => {
        stream.on('error', (e) => check.destroy(e));
        stream.pipe(check);
      }, (e: unknown) => check.destroy(e instanceof Error ? e : new Error(String(e))));
      return check;
    });
    uploaded = true;
  }
  if (!await client.hasBlob(image.configDescriptor.digest)) {
    await client.uploadBlob(image.configDescriptor.digest, image.config.length, image.config);
  }
  const reference = opts.tag ?? image.manifestDigest;
  const returned = await client.putManifest(reference, image.manifest, MEDIA_MANIFEST);
  if (returned && returned !== image.manifestDigest) {
    throw new RegistryError(0, `registry stored the manifest as ${returned}, expected ${image.manifestDigest}`, false);
  }
  return {
    image: formatRef(client.ref, image.manifestDigest),
    manifestDigest: image.manifestDigest,
    layer: { digest: scanned.digest, size: scanned.size, uploaded },
    meta: scanned.meta,
    annotations,
  };
}
