/**
 * @dif-fusion/fusion-head: Dif-Fusion's fusion head, fusion loss and head training.
 *
 * Stable API (used by apps/trainer, packages/onnx, packages/torch-import):
 * - Head (`./head`): `FusionHead` (official state_dict keys; `forward(ops, feats)` on any
 *   `Ops<T>`; `requiredFeatureIndices()`, `usedParams()`, `featureChannels(i)`,
 *   `toJSON()` / `FusionHead.fromJSON()`), and its layers `Block`, `AttentionBlock`,
 *   `ChannelSpatialSE`, `HeadConv`.
 * - Config (`./config`): `FusionHeadConfig`, `FusionHeadConfigInput`, `FusionHeadMode`
 *   ('reference' | 'full'), `normalizeHeadConfig`, `headConfigFromReference` (the
 *   reference's fusion_train.json, object or text), `headConfigToJSON`,
 *   `parseJsonWithComments`, `scaleLevel`, `scaleChannels`, `DEFAULT_FEAT_SCALES`,
 *   `DEFAULT_TIME_STEPS`.
 * - Loss settings (`./loss-options`): `FusionLossOptions`, `LossSpace`, `ImageLayout`.
 * - Loss, the one definition on any `Ops` (`./fusion-loss`): `fusionLossTerms` (intensity +
 *   alpha * gradient + optional colour-fidelity term), `sobelMagnitude`, `luma`, `chroma`.
 *   Its tfjs entry (`./loss`, subpath `@dif-fusion/fusion-head/tfjs`): `fusionLoss` (either
 *   layout, host-computed targets), `FusionLossResult`, and NHWC `sobelMagnitude`, `luma`.
 * - Training (`./train`, tfjs, subpath `@dif-fusion/fusion-head/tfjs`): `HeadTrainer`, `headTrainStep`, `ddpmInput`,
 *   `disposeFeatures`, `headOptimizer`, `setLearningRate`, `headLearningRate`, and the types
 *   `FusionBatch`, `HeadFeatures`, `HeadFeatureExtractor` (the frozen DDPM's extractor is
 *   @dif-fusion/diffusion's `makeFeatureExtractor`), `HeadParamSource`, `NamedGradientOptimizer`,
 *   `HeadOptimizerLike`, `HeadStepArgs`, `HeadStepResult`, `HeadLossValues`,
 *   `HeadTrainerOptions`.
 */
export * from './config';
export * from './fusion-loss';
export * from './head';
export * from './loss-options';
export * from './sobel';
export * from './target';
