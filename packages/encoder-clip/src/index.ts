/**
 * @dfd/encoder-clip: CLIP's towers in tfjs from Hugging Face weights (trainable), its BPE tokenizer, CLIP
 * preprocessing, and a fast frozen image path on onnxruntime-node.
 */
export * from './config.js';
export * from './tokenizer.js';
export * from './weights.js';
export * from './clip-encoder.js';
export * from './load.js';
export * from './preprocess.js';
export * from './pil-resample.js';
export * from './onnx-encoder.js';
export * from './onnx-session.js';
export { ensureClipVisionOnnx, CLIP_ONNX_MANIFEST_FORMAT, PRECISION_METHODS, STATIC_INT8_METHOD, CALIBRATION_METHOD, type BuiltGraph, type BuiltGraphManifest } from './onnx-build/build-cache.js';
export {
  CLIP_VISION_GRAPH_VERSION,
  ClipGraphError,
  probeOutputs,
  writeClipVisionGraph,
  type GraphPrecision,
  type GraphReport,
  type GraphVariant,
} from './onnx-build/clip-vision-graph.js';
export * from './onnx-build/static-int8.js';
export { calibrateChannelRanges, calibrationSet, type CalibrationSet } from './onnx-build/calibrate.js';
export { calibrationImages, drawCalibrationImages } from './cli/calibration.js';
export { OnnxGraphBuilder } from './onnx-build/graph-builder.js';
export { ProtoWriter, DataType as OnnxDataType } from './onnx-build/proto.js';
export { INT8_WEIGHT_MAX, quantizeLinearWeight } from './onnx-build/quantize.js';
export { GraphQuantizeError, quantizeMatMulWeight, quantizeOnnxMatMuls, type QuantizeGraphOptions, type QuantizeGraphReport } from './onnx-build/quantize-graph.js';
export * from './frozen-tfjs.js';
export * from './plugin.js';
export { encodeCommand } from './cli/encode.js';
export { imagesFromGlob, imagesFromList, readImageList, type ListedImage } from './cli/image-list.js';
export { clipPlugin as default } from './plugin.js';
export {
  foldProbeRanges,
  quantizeOnnxStatic,
  rangeProbeOutputs,
  writeRangeProbeModel,
  type StaticQdqOptions,
  type StaticQdqReport,
} from './onnx-build/static-qdq-graph.js';
export type { ActivationRange } from './onnx-build/static-int8.js';
