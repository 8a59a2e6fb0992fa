export * from './dif-fusion';
export * from './pickle';
export * from './torch-file';
