export * from './feature-extractor';
export * from './gaussian-diffusion';
export * from './parameterisation';
