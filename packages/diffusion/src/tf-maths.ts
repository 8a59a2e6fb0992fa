import { TfOps } from '@dif-fusion/tfjs';

/** TfOps for the parameter-free maths of ./losses.ts (q_sample outside a network). */
export const tfMaths = new TfOps({
  get: (name) => {
    throw new Error(`diffusion maths read no parameter (asked for ${name})`);
  },
});
