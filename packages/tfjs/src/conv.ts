/**
 * The convolution TfOps runs (NHWC input, `[kh, kw, I, O]` kernel, symmetric zero padding):
 * tfjs's own, or fast-conv.ts's with hand-written gradients. Its own module so that
 * fast-conv.ts and tf-ops.ts both import it without importing each other.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone has no gradients registered; training needs them (as tf-ops.ts does).
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';

export type Conv2dFn = (
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  stride: number,
  padding: number,
) => tf.Tensor4D;

/** Plain tfjs convolution (NHWC, explicit symmetric padding). */
export const plainConv2d: Conv2dFn = (x, w, stride, padding) =>
  tf.conv2d(x, w, stride, padding === 0 ? 'valid' : padding);
