/**
 * What every rewrite of an existing ONNX model shares (the dynamic int8 rewrite, the calibration probes and
 * the static QDQ rewrite): the model read into its nodes and initializers, new weights written to one
 * external-data file beside the output, and the model written back with every field it does not touch kept
 * byte for byte.
 *
 * The output always sits in the source's folder, so the initializers a rewrite leaves alone keep pointing
 * at the original external-data file: nothing is copied, only new tensors go to `<out>.data`.
 */
import { open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { encodeTensor, ProtoWriter, type DataTypeCode } from './proto.js';
import { parseNode, parseTensor, readFields, type ParsedNode, type ParsedTensor, type RawField } from './proto-reader.js';

export class GraphQuantizeError extends Error {
  override name = 'GraphQuantizeError';
}

/** A model read for rewriting: nodes and initializers parsed, the rest kept as raw fields. */
export interface OnnxModelParts {
  path: string;
  dir: string;
  modelFields: RawField[];
  graphFields: RawField[];
  nodes: ParsedNode[];
  inits: Map<string, ParsedTensor>;
  graphOutputs: Set<string>;
  /** Tensor name → the nodes reading it, in graph order. */
  consumers: Map<string, ParsedNode[]>;
}

const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);

export async function readOnnxModel(path: string): Promise<OnnxModelParts> {
  const model = new Uint8Array(await readFile(path));
  const modelFields = readFields(model);
  const graphField = modelFields.find((f) => f.field === 7);
  if (!graphField?.payload) throw new GraphQuantizeError(`${path} has no graph`);
  const graphFields = readFields(graphField.payload);
  const nodes = graphFields.filter((f) => f.field === 1).map((f) => parseNode(f.payload!));
  const inits = new Map<string, ParsedTensor>(
    graphFields.filter((f) => f.field === 5).map((f) => {
      const tensor = parseTensor(f.payload!);
      return [tensor.name, tensor];
    }),
  );
  const graphOutputs = new Set(graphFields.filter((f) => f.field === 12).map((f) => text(readFields(f.payload!).find((x) => x.field === 1)?.payload)));
  const consumers = new Map<string, ParsedNode[]>();
  for (const node of nodes) for (const name of node.inputs) consumers.set(name, [...(consumers.get(name) ?? []), node]);
  return { path, dir: dirname(resolve(path)), modelFields, graphFields, nodes, inits, graphOutputs, consumers };
}

/** A float32 initializer's values, inline or from its external-data file. */
export async function initializerFloats(tensor: ParsedTensor, modelDir: string): Promise<Float32Array> {
  const count = tensor.dims.reduce((a, b) => a * b, 1);
  let bytes: Uint8Array;
  if (tensor.external) {
    const handle = await open(join(modelDir, tensor.external.location), 'r');
    try {
      bytes = new Uint8Array(count * 4);
      const { bytesRead } = await handle.read(bytes, 0, bytes.length, tensor.external.offset);
      if (bytesRead !== bytes.length) throw new GraphQuantizeError(`${tensor.name}: external data ${tensor.external.location} is truncated`);
    } finally {
      await handle.close();
    }
  } else if (tensor.data) {
    bytes = tensor.data;
  } else {
    throw new GraphQuantizeError(`${tensor.name}: initializer without data`);
  }
  const copy = new Uint8Array(bytes); // aligned
  return new Float32Array(copy.buffer, 0, count);
}

/** Tensors smaller than this stay in the graph file (scales, zero points): a page each in the data file would waste it. */
const INLINE_BYTES = 1024;

/** The new initializers of a rewrite: page-aligned in `<output>.data`, written under a temporary name until committed. */
export class ExternalDataWriter {
  readonly tensors: Uint8Array[] = [];
  bytes = 0;

  private constructor(
    private readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  static async open(output: string): Promise<ExternalDataWriter> {
    const path = `${resolve(output)}.data`;
    return new ExternalDataWriter(path, await open(`${path}.tmp-${process.pid}`, 'w'));
  }

  async add(name: string, dims: number[], array: Int8Array | Uint8Array | Int32Array | Float32Array, type: DataTypeCode): Promise<string> {
    const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
    if (bytes.length < INLINE_BYTES) {
      this.tensors.push(encodeTensor(name, type, dims, { raw: bytes.slice() }));
      return name;
    }
    this.bytes += (4096 - (this.bytes % 4096)) % 4096;
    await this.handle.write(bytes, 0, bytes.length, this.bytes);
    this.tensors.push(encodeTensor(name, type, dims, { external: { location: basename(this.path), offset: this.bytes, length: bytes.length } }));
    this.bytes += bytes.length;
    return name;
  }

  async commit(): Promise<void> {
    await this.handle.close();
    await rename(`${this.path}.tmp-${process.pid}`, this.path);
  }

  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await rm(`${this.path}.tmp-${process.pid}`, { force: true });
  }
}

/** What a rewrite changes: the new node list (in order), initializers dropped and added, outputs added. */
export interface ModelRewrite {
  nodes: Uint8Array[];
  dropInitializers?: ReadonlySet<string>;
  newInitializers?: Uint8Array[];
  /** Encoded ValueInfoProtos appended to the graph's outputs. */
  newOutputs?: Uint8Array[];
  /** Declare the com.microsoft opset (contrib ops such as DynamicQuantizeMatMul). */
  microsoftDomain?: boolean;
}

/** Writes `parts` with `rewrite` applied to `output` (atomically: a temporary file, then a rename). */
export async function writeRewrittenModel(parts: OnnxModelParts, output: string, rewrite: ModelRewrite): Promise<void> {
  const graph = new ProtoWriter();
  for (const node of rewrite.nodes) graph.bytes(1, node);
  for (const f of parts.graphFields) {
    if (f.field === 1) continue;
    if (f.field === 5 && rewrite.dropInitializers?.has(parseTensor(f.payload!).name)) continue;
    graph.raw(f.bytes);
  }
  for (const init of rewrite.newInitializers ?? []) graph.bytes(5, init);
  for (const out of rewrite.newOutputs ?? []) graph.bytes(12, out);

  const model = new ProtoWriter();
  let hasMicrosoft = false;
  for (const f of parts.modelFields) {
    if (f.field === 7) {
      model.bytes(7, graph.finish());
      continue;
    }
    if (f.field === 8 && readFields(f.payload!).some((x) => x.field === 1 && text(x.payload) === 'com.microsoft')) hasMicrosoft = true;
    model.raw(f.bytes);
  }
  if (rewrite.microsoftDomain && !hasMicrosoft) model.message(8, (o) => o.string(1, 'com.microsoft').int(2, 1));
  const tmp = `${resolve(output)}.tmp-${process.pid}`;
  await writeFile(tmp, model.finish());
  await rename(tmp, resolve(output));
}

/** A node's raw bytes with new inputs and outputs; its op, name, attributes and domain are kept. */
export function withNodeIO(node: ParsedNode, inputs: string[], outputs: string[]): Uint8Array {
  const w = new ProtoWriter();
  for (const input of inputs) w.string(1, input);
  for (const output of outputs) w.string(2, output);
  for (const f of readFields(node.raw)) if (f.field !== 1 && f.field !== 2) w.raw(f.bytes);
  return w.finish();
}

/** Refuses an output outside the source's folder (the untouched weights must stay reachable beside it). */
export function assertBeside(input: string, output: string): void {
  if (dirname(resolve(output)) !== dirname(resolve(input))) {
    throw new GraphQuantizeError(`write the rewritten model beside ${input} (same folder), so untouched weights stay where they are`);
  }
}
