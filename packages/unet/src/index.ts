export * from './blocks';
export * from './config';
export * from './unet';
