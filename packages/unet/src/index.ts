export * from './blocks';
export * from './config';
export * from './skip-unet';
export * from './unet';
