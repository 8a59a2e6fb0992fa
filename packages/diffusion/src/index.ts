export * from './feature-extractor';
export * from './gaussian-diffusion';
