/**
 * Fusing one queued pair, as `dif-fuse --pairs` fuses it (same reading, pipeline and atomic
 * write, so the bytes are identical). Input errors (a corrupt or missing image, a size
 * mismatch, a bad model folder) fail the job at once: retrying cannot heal them. Write
 * errors are retried (BullMQ's attempts and backoff), then fail with their message.
 */
import { dirname } from 'node:path';
import { DifFusionError, formatError, makeDirsSync } from '@dif-fusion/io';
import { UnrecoverableError } from 'bullmq';
import { type AlignedPair, createAligner } from '../align/apply';
import { FuseError } from '../errors';
import { fuseImages, type OpenedFuser, type OpenOptions, openFuser } from '../fuse';
import { type Planar, readPair, writeImage } from '../images';
import { checkModelDir, modelDigest, resolveModelDir } from '../model';
import type { PairJob } from './jobs';

/** Opened fusers by method/model/seed/device: the model loads once per worker. */
export class FuserCache {
  private readonly open = new Map<string, Promise<OpenedFuser>>();
  constructor(private readonly o: Pick<OpenOptions, 'device' | 'threads'> = {}) {}
  get(j: PairJob): Promise<OpenedFuser> {
    const key = JSON.stringify([j.method, j.model ?? null, j.modelSha256 ?? null, j.seed]);
    let p = this.open.get(key);
    if (!p) {
      if (j.method === 'model' && j.modelSha256) {
        const { dir } = resolveModelDir(j.model);
        checkModelDir(dir);
        const found = modelDigest(dir);
        if (found !== j.modelSha256)
          throw new FuseError(
            `model folder ${dir} is not the model this job was queued with (sha256 ${found.slice(0, 12)}…, queued ${j.modelSha256.slice(0, 12)}…): give every worker the same model`,
          );
      }
      p = openFuser({
        method: j.method,
        model: j.model,
        seed: j.seed,
        device: this.o.device,
        threads: this.o.threads,
      });
      this.open.set(key, p);
      p.catch(() => this.open.delete(key));
    }
    return p;
  }
  async release(): Promise<void> {
    for (const p of this.open.values()) await (await p.catch(() => null))?.release();
    this.open.clear();
  }
}

/** Fuses one pair job; what the worker's processor runs. */
export async function fusePairJob(j: PairJob, fusers: FuserCache): Promise<{ out: string }> {
  let ir: Planar;
  let vis: Planar;
  let aligned: AlignedPair | undefined;
  let opened: OpenedFuser;
  try {
    const opts = {
      maxPixels: j.maxPixels === undefined ? undefined : j.maxPixels * 1e6,
      allowCorrupt: j.allowCorrupt,
    };
    if (j.align || j.resize) {
      // As `dif-fuse --pairs --align/--resize` reads the pair; the rig comes with the job.
      const flags = { align: j.align, resize: j.resize, onto: j.onto, crop: j.crop };
      const aligner = createAligner(
        flags,
        j.rig
          ? { visToIr: j.rig.vis_to_ir, how: `rig ${j.align}`, rig: j.rig, rigName: j.align }
          : undefined,
      );
      aligned = await aligner.read(j.ir, j.vis, opts);
      ({ ir, vis } = aligned);
    } else ({ ir, vis } = await readPair(j.ir, j.vis, opts));
    opened = await fusers.get(j);
  } catch (err) {
    // Bad inputs and model folders (the project's one-line user errors) do not heal by retrying.
    if (err instanceof DifFusionError) throw new UnrecoverableError(formatError(err));
    throw err;
  }
  let fused = await fuseImages(ir, vis, opened, {
    tile: j.tile,
    overlap: j.overlap,
    memoryBudget: j.memoryBudget,
  });
  if (aligned) fused = aligned.finish(fused);
  // Writing may fail for a while (a full disk, a network share away): retried with backoff.
  try {
    makeDirsSync(dirname(j.out));
    await writeImage(j.out, fused);
  } catch (err) {
    throw new Error(formatError(err));
  }
  return { out: j.out };
}
