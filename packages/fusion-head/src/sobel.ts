/**
 * The Sobel kernels of the fusion loss's gradient term (official models/fs_loss.py's
 * Sobelxy), the one definition: `sobelMagnitude` (./fusion-loss.ts, on `Ops`, every
 * realisation) and the host-side fusion targets (`sobelMagnitudePlane`, ./target.ts) read
 * them. Row-major 3x3, applied as a cross-correlation (as Conv layers do).
 *
 *   sobel_x = [[-1,0,1],[-2,0,2],[-1,0,1]],   sobel_y = [[1,2,1],[0,0,0],[-1,-2,-1]]
 */
export const SOBEL_X: readonly number[] = [-1, 0, 1, -2, 0, 2, -1, 0, 1];
export const SOBEL_Y: readonly number[] = [1, 2, 1, 0, 0, 0, -1, -2, -1];
