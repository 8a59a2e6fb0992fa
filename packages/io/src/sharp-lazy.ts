/**
 * sharp (libvips) loaded on first use: importing @dif-fusion/io for its errors, progress bars
 * or datasets does not load the image library (about a third of a second of `dif-fuse --help`).
 */
import type sharpType from 'sharp';

export type Sharp = typeof sharpType;

let loaded: Promise<Sharp> | undefined;

/** The sharp module's default export, imported once. */
export function loadSharp(): Promise<Sharp> {
  loaded ??= import('sharp').then((m) => m.default);
  return loaded;
}
