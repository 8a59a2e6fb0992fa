export * from './gaussian-diffusion';
