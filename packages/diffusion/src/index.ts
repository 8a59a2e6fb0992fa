export * from './feature-extractor';
export * from './gaussian-diffusion';
export * from './learned-variance';
export * from './parameterisation';
