/**
 * A minimal protobuf encoder for the subset of `onnx.proto` that a graph writer needs: ModelProto, GraphProto,
 * NodeProto, AttributeProto, TensorProto (raw or external data), ValueInfoProto. Field numbers are those of
 * onnx/onnx.proto3 (the wire format of every ONNX file). Hand-written instead of a protobuf dependency: the
 * subset is small, the graph part of a model is a few hundred kB (weights go to an external-data file), and
 * the only consumer is onnxruntime, which the tests run on every graph written.
 */

/** ONNX `TensorProto.DataType` values used here. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10, BFLOAT16: 16 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** Growable byte sink with the protobuf wire primitives. */
export class ProtoWriter {
  private buffer = new Uint8Array(256);
  private length = 0;

  private reserve(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buffer.subarray(0, this.length));
    this.buffer = next;
  }

  /** Unsigned or signed varint; negative values take ten bytes (two's complement of int64), as protobuf says. */
  varint(value: number | bigint): this {
    let v = BigInt.asUintN(64, BigInt(value));
    this.reserve(10);
    while (v >= 0x80n) {
      this.buffer[this.length++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buffer[this.length++] = Number(v);
    return this;
  }

  private tag(field: number, wire: 0 | 1 | 2 | 5): this {
    return this.varint((field << 3) | wire);
  }

  int(field: number, value: number | bigint): this {
    return this.tag(field, 0).varint(value);
  }

  float(field: number, value: number): this {
    this.tag(field, 5);
    this.reserve(4);
    new DataView(this.buffer.buffer).setFloat32(this.length, value, true);
    this.length += 4;
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2).varint(data.length);
    this.reserve(data.length);
    this.buffer.set(data, this.length);
    this.length += data.length;
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, write: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    write(inner);
    return this.bytes(field, inner.finish());
  }

  packedInts(field: number, values: ArrayLike<number | bigint>): this {
    const inner = new ProtoWriter();
    for (let i = 0; i < values.length; i++) inner.varint(values[i]!);
    return this.bytes(field, inner.finish());
  }

  packedFloats(field: number, values: ArrayLike<number>): this {
    const data = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) data[i] = values[i]!;
    return this.bytes(field, new Uint8Array(data.buffer));
  }

  /** Appends already-encoded bytes (a field copied from another message). */
  raw(data: Uint8Array): this {
    this.reserve(data.length);
    this.buffer.set(data, this.length);
    this.length += data.length;
    return this;
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

export type AttributeValue = number | string | number[] | { floats: number[] } | { float: number };

/** Node attribute: integers stay INT(S), `{ float }`/`{ floats }` mark FLOAT(S) (a JS number alone is ambiguous). */
export function writeAttribute(w: ProtoWriter, name: string, value: AttributeValue): void {
  w.message(5, (a) => {
    a.string(1, name);
    if (typeof value === 'number') {
      if (!Number.isInteger(value)) throw new Error(`attribute ${name}: ${value} is not an integer; pass { float: ${value} }`);
      a.int(3, value).int(20, 2);
    } else if (typeof value === 'string') {
      a.string(4, value).int(20, 3);
    } else if (Array.isArray(value)) {
      a.packedInts(8, value).int(20, 7);
    } else if ('float' in value) {
      a.float(2, value.float).int(20, 1);
    } else {
      a.packedFloats(7, value.floats).int(20, 6);
    }
  });
}

export interface NodeSpec {
  op: string;
  domain?: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes?: Record<string, AttributeValue>;
}

export function encodeNode(node: NodeSpec): Uint8Array {
  const w = new ProtoWriter();
  for (const input of node.inputs) w.string(1, input);
  for (const output of node.outputs) w.string(2, output);
  w.string(3, node.name).string(4, node.op);
  for (const [name, value] of Object.entries(node.attributes ?? {})) writeAttribute(w, name, value);
  if (node.domain) w.string(7, node.domain);
  return w.finish();
}

export type TensorLocation = { raw: Uint8Array } | { external: { location: string; offset: number; length: number } };

export function encodeTensor(name: string, dataType: DataTypeCode, dims: number[], data: TensorLocation): Uint8Array {
  const w = new ProtoWriter();
  for (const d of dims) w.int(1, d);
  w.int(2, dataType).string(8, name);
  if ('raw' in data) {
    w.bytes(9, data.raw);
  } else {
    const entries: Array<[string, string]> = [
      ['location', data.external.location],
      ['offset', String(data.external.offset)],
      ['length', String(data.external.length)],
    ];
    for (const [key, value] of entries) w.message(13, (e) => e.string(1, key).string(2, value));
    w.int(14, 1);
  }
  return w.finish();
}

/** A tensor value's declared type; a string dimension is symbolic (`batch`). */
export function encodeValueInfo(name: string, elemType: DataTypeCode, dims: Array<number | string>): Uint8Array {
  return new ProtoWriter()
    .string(1, name)
    .message(2, (type) =>
      type.message(1, (tensor) =>
        tensor.int(1, elemType).message(2, (shape) => {
          for (const d of dims) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
        }),
      ),
    )
    .finish();
}

export interface ModelSpec {
  graphName: string;
  nodes: Uint8Array[];
  initializers: Uint8Array[];
  inputs: Uint8Array[];
  outputs: Uint8Array[];
  /** domain → opset version ('' is the default ONNX domain). */
  opsets: Record<string, number>;
  producer: string;
  producerVersion: string;
  metadata?: Record<string, string>;
  irVersion?: number;
}

export function encodeModel(spec: ModelSpec): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, spec.irVersion ?? 8).string(2, spec.producer).string(3, spec.producerVersion);
  w.message(7, (g) => {
    for (const node of spec.nodes) g.bytes(1, node);
    g.string(2, spec.graphName);
    for (const init of spec.initializers) g.bytes(5, init);
    for (const input of spec.inputs) g.bytes(11, input);
    for (const output of spec.outputs) g.bytes(12, output);
  });
  for (const [domain, version] of Object.entries(spec.opsets)) w.message(8, (o) => o.string(1, domain).int(2, version));
  for (const [key, value] of Object.entries(spec.metadata ?? {})) w.message(14, (e) => e.string(1, key).string(2, value));
  return w.finish();
}
