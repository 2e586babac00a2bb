/**
 * Builds one ONNX model: nodes with generated names, small constants inline, weights streamed to an
 * external-data file beside the graph (so a ViT-L/14 never sits in memory twice while it is written, and the
 * graph stays far below protobuf's 2 GB limit). Offsets are page-aligned, the condition under which
 * onnxruntime may memory-map external initializers instead of copying them.
 */
import { open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { DataType, encodeModel, encodeNode, encodeTensor, encodeValueInfo, type AttributeValue, type DataTypeCode } from './proto.js';

const ALIGN = 4096;

export type WeightData = Float32Array | Int8Array | Uint8Array;

function bytesOf(data: WeightData | BigInt64Array | Int32Array | Int8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export class OnnxGraphBuilder {
  private readonly nodes: Uint8Array[] = [];
  private readonly initializers: Uint8Array[] = [];
  private readonly inputs: Uint8Array[] = [];
  private readonly outputs: Uint8Array[] = [];
  private readonly opsets: Record<string, number> = { '': 17 };
  private counter = 0;
  private offset = 0;

  private constructor(
    private readonly modelPath: string,
    private readonly dataPath: string,
    private readonly data: FileHandle,
  ) {}

  /** Writes `<modelPath>` and `<modelPath>.data` (both through temporary names, renamed by `finish`). */
  static async create(modelPath: string): Promise<OnnxGraphBuilder> {
    const dataPath = `${modelPath}.data`;
    const handle = await open(`${dataPath}.tmp-${process.pid}`, 'w');
    return new OnnxGraphBuilder(modelPath, dataPath, handle);
  }

  /** A fresh value name with a readable prefix. */
  name(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  useOpset(domain: string, version: number): void {
    this.opsets[domain] = version;
  }

  /** A weight tensor, appended to the external-data file. */
  async weight(name: string, dims: number[], data: WeightData, dataType?: DataTypeCode): Promise<string> {
    const type = dataType ?? (data instanceof Float32Array ? DataType.FLOAT : data instanceof Int8Array ? DataType.INT8 : DataType.UINT8);
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`weight ${name}: dims [${dims.join(', ')}] hold ${count} values, got ${data.length}`);
    const padding = (ALIGN - (this.offset % ALIGN)) % ALIGN;
    if (padding) await this.data.write(new Uint8Array(padding), 0, padding, this.offset);
    this.offset += padding;
    const bytes = bytesOf(data);
    await this.data.write(bytes, 0, bytes.length, this.offset);
    this.initializers.push(encodeTensor(name, type, dims, { external: { location: basename(this.dataPath), offset: this.offset, length: bytes.length } }));
    this.offset += bytes.length;
    return name;
  }

  /** A small constant stored inside the graph. */
  constant(prefix: string, dims: number[], data: Float32Array | BigInt64Array | Int32Array | Int8Array | Uint8Array, dataType?: DataTypeCode): string {
    const type =
      dataType ??
      (data instanceof Float32Array
        ? DataType.FLOAT
        : data instanceof BigInt64Array
          ? DataType.INT64
          : data instanceof Int32Array
            ? DataType.INT32
            : data instanceof Uint8Array
              ? DataType.UINT8
              : DataType.INT8);
    const name = this.name(prefix);
    this.initializers.push(encodeTensor(name, type, dims, { raw: bytesOf(data) }));
    return name;
  }

  int64s(prefix: string, values: number[]): string {
    return this.constant(prefix, [values.length], BigInt64Array.from(values.map(BigInt)));
  }

  /** Adds a node and returns its output names (`outputs` fresh names unless given). */
  node(op: string, inputs: string[], options: { attributes?: Record<string, AttributeValue>; domain?: string; outputs?: number | string[] } = {}): string[] {
    const outputs = Array.isArray(options.outputs) ? options.outputs : Array.from({ length: options.outputs ?? 1 }, () => this.name(op));
    this.nodes.push(encodeNode({ op, inputs, outputs, name: this.name(`n_${op}`), ...(options.domain ? { domain: options.domain } : {}), ...(options.attributes ? { attributes: options.attributes } : {}) }));
    return outputs;
  }

  /** One-output shorthand for `node`. */
  op(op: string, inputs: string[], attributes?: Record<string, AttributeValue>, domain?: string, output?: string): string {
    return this.node(op, inputs, { ...(attributes ? { attributes } : {}), ...(domain ? { domain } : {}), ...(output ? { outputs: [output] } : {}) })[0]!;
  }

  input(name: string, type: DataTypeCode, dims: Array<number | string>): string {
    this.inputs.push(encodeValueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: DataTypeCode, dims: Array<number | string>): void {
    this.outputs.push(encodeValueInfo(name, type, dims));
  }

  /** Writes the graph and moves both files into place (the data file first, so a graph never points at nothing). */
  async finish(metadata: Record<string, string>, graphName: string): Promise<{ modelPath: string; dataPath: string; dataBytes: number }> {
    await this.data.close();
    const model = encodeModel({
      graphName,
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: this.inputs,
      outputs: this.outputs,
      opsets: this.opsets,
      producer: '@dfd/encoder-clip',
      producerVersion: '0.1.0',
      metadata,
    });
    await rename(`${this.dataPath}.tmp-${process.pid}`, this.dataPath);
    const tmp = `${this.modelPath}.tmp-${process.pid}`;
    await writeFile(tmp, model);
    await rename(tmp, this.modelPath);
    return { modelPath: this.modelPath, dataPath: this.dataPath, dataBytes: this.offset };
  }

  async abort(): Promise<void> {
    await this.data.close().catch(() => undefined);
    await rm(`${this.dataPath}.tmp-${process.pid}`, { force: true });
  }
}
