export * from './blocks';
export * from './config';
export * from './denoiser';
export * from './skip-unet';
export * from './unet';
