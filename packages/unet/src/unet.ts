/**
 * The SR3 UNet as Dif-Fusion uses it (`model/sr3_modules/unet.py`): init conv, a down
 * path of ResnetBlocWithAttn + Downsample, a middle (with and without attention), an up
 * path whose blocks take the matching down-path output concatenated on channels, and a
 * final Block. Defined once against `Ops<T>`: `new TfOps(...)` runs it on tfjs,
 * `OnnxOps` (@dif-fusion/onnx) turns the same calls into an ONNX graph.
 */
import { Conv2d, type Ops, type ParamSpec, type WeightInit } from '@dif-fusion/nn';
import { Block, Downsample, NoiseLevelMlp, ResnetBlocWithAttn, Upsample } from './blocks';
import { parseUNetConfig, type UNetConfig } from './config';
import { DecoderNet, type UNetFeatures } from './denoiser';

type DownLayer = ResnetBlocWithAttn | Downsample;
type UpLayer = ResnetBlocWithAttn | Upsample;

export class UNet extends DecoderNet {
  readonly config: UNetConfig;
  readonly noiseLevelMlp: NoiseLevelMlp | null;
  readonly initConv: Conv2d;
  readonly downs: DownLayer[] = [];
  readonly mid: ResnetBlocWithAttn[];
  readonly ups: UpLayer[] = [];
  readonly finalConv: Block;

  /**
   * @param init weight init of conv/linear layers: `torch` (PyTorch's default) or
   * `orthogonal` (what the official training script applies).
   */
  constructor(config: UNetConfig, options: { init?: WeightInit } = {}) {
    super('');
    const c = parseUNetConfig(config);
    this.config = c;
    const init = options.init;
    const embDim = c.with_noise_level_emb === false ? null : c.inner_channel;
    this.noiseLevelMlp = embDim
      ? new NoiseLevelMlp('noise_level_mlp', c.inner_channel, init)
      : null;
    const block = (prefix: string, dim: number, dimOut: number, withAttn: boolean) =>
      new ResnetBlocWithAttn(prefix, dim, dimOut, {
        embDim,
        groups: c.norm_groups,
        dropout: c.dropout,
        affine: c.use_affine_level ?? false,
        scaleShift: c.use_scale_shift_norm ?? false,
        withAttn,
        nHead: c.num_heads ?? 1,
        init,
      });

    this.initConv = new Conv2d('init_conv', c.in_channel, c.inner_channel, 3, { padding: 1, init });
    const levels = c.channel_multiplier.length;
    let pre = c.inner_channel;
    const featChannels = [pre];
    let res = c.image_size;
    let scale = 1;
    for (let i = 0; i < levels; i++) {
      const useAttn = c.attn_res.includes(res);
      const ch = c.inner_channel * c.channel_multiplier[i];
      for (let r = 0; r < c.res_blocks; r++) {
        this.downs.push(block(`downs.${this.downs.length}`, pre, ch, useAttn));
        featChannels.push(ch);
        pre = ch;
      }
      if (i < levels - 1) {
        this.downs.push(new Downsample(`downs.${this.downs.length}`, pre, init));
        featChannels.push(pre);
        res = Math.floor(res / 2);
        scale *= 2;
      }
    }
    this.mid = [block('mid.0', pre, pre, true), block('mid.1', pre, pre, false)];
    for (let i = levels - 1; i >= 0; i--) {
      const useAttn = c.attn_res.includes(res);
      const ch = c.inner_channel * c.channel_multiplier[i];
      for (let r = 0; r < c.res_blocks + 1; r++) {
        this.ups.push(block(`ups.${this.ups.length}`, pre + featChannels.pop()!, ch, useAttn));
        this.upBlocks.push({ channels: ch, scale });
        pre = ch;
      }
      if (i > 0) {
        this.ups.push(new Upsample(`ups.${this.ups.length}`, pre, init));
        res *= 2;
        scale /= 2;
      }
    }
    this.finalConv = new Block('final_conv', pre, c.out_channel, c.norm_groups, 0, init);
  }

  params(): ParamSpec[] {
    return [
      ...(this.noiseLevelMlp?.params() ?? []),
      ...this.initConv.params(),
      ...this.downs.flatMap((l) => l.params()),
      ...this.mid.flatMap((l) => l.params()),
      ...this.ups.flatMap((l) => l.params()),
      ...this.finalConv.params(),
    ];
  }

  /** One pass returning the noise prediction and every feature (as the golden files store them). */
  forwardWithFeatures<T>(ops: Ops<T>, x: T, level: T): UNetFeatures<T> & { eps: T } {
    const r = this.run(ops, x, level, 0, true);
    return { fe: r.fe, fd: r.fd, eps: r.out as T };
  }

  protected run<T>(
    ops: Ops<T>,
    x: T,
    level: T,
    minIndex: number,
    final: boolean,
  ): UNetFeatures<T> & { out?: T } {
    const emb = this.noiseLevelMlp ? this.noiseLevelMlp.forward(ops, level) : null;
    let h = this.initConv.forward(ops, x);
    const feats: T[] = [h];
    for (const layer of this.downs) {
      h = layer instanceof ResnetBlocWithAttn ? layer.forward(ops, h, emb) : layer.forward(ops, h);
      feats.push(h);
    }
    const fe = feats.slice();
    for (const layer of this.mid) h = layer.forward(ops, h, emb);
    const n = this.decoderCount;
    const fd: T[] = new Array(n);
    let k = 0; // up blocks done
    for (const layer of this.ups) {
      if (layer instanceof ResnetBlocWithAttn) {
        h = layer.forward(ops, ops.concatChannels([h, feats.pop()!]), emb);
        fd[n - 1 - k] = h;
        k++;
        if (!final && n - k <= minIndex) break;
      } else {
        h = layer.forward(ops, h);
      }
    }
    return { fe, fd, out: final ? this.finalConv.forward(ops, h) : undefined };
  }
}
