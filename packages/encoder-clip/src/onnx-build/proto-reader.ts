/**
 * A minimal protobuf reader for the parts of an ONNX model a graph rewrite needs: the graph's nodes and
 * initializers, parsed; every other field kept as its original bytes so a rewritten model keeps them
 * unchanged (value_info, metadata, opsets, doc strings...). Field numbers as in onnx/onnx.proto3.
 */

export interface RawField {
  field: number;
  wire: number;
  /** The field's complete encoding (tag included), to write back unchanged. */
  bytes: Uint8Array;
  /** Varint value (wire 0). */
  value?: bigint;
  /** Payload (wire 2). */
  payload?: Uint8Array;
}

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new Error('protobuf: truncated varint');
    const byte = buf[pos++]!;
    result |= BigInt(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return [result, pos];
    shift += 7n;
  }
}

/** Splits a message into its fields, in order. */
export function readFields(buf: Uint8Array): RawField[] {
  const fields: RawField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const [tag, afterTag] = readVarint(buf, pos);
    pos = afterTag;
    const field = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    const entry: Partial<RawField> = { field, wire };
    if (wire === 0) {
      [entry.value, pos] = readVarint(buf, pos);
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else if (wire === 2) {
      const [length, afterLength] = readVarint(buf, pos);
      entry.payload = buf.subarray(afterLength, afterLength + Number(length));
      pos = afterLength + Number(length);
    } else {
      throw new Error(`protobuf: unsupported wire type ${wire} (field ${field})`);
    }
    if (pos > buf.length) throw new Error('protobuf: truncated message');
    entry.bytes = buf.subarray(start, pos);
    fields.push(entry as RawField);
  }
  return fields;
}

const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b ?? new Uint8Array(0));

export interface ParsedNode {
  raw: Uint8Array;
  inputs: string[];
  outputs: string[];
  op: string;
  domain: string;
}

export function parseNode(raw: Uint8Array): ParsedNode {
  const node: ParsedNode = { raw, inputs: [], outputs: [], op: '', domain: '' };
  for (const f of readFields(raw)) {
    if (f.field === 1) node.inputs.push(text(f.payload));
    else if (f.field === 2) node.outputs.push(text(f.payload));
    else if (f.field === 4) node.op = text(f.payload);
    else if (f.field === 7) node.domain = text(f.payload);
  }
  return node;
}

export interface ParsedTensor {
  raw: Uint8Array;
  name: string;
  dims: number[];
  dataType: number;
  /** Inline bytes (raw_data), or float_data packed into bytes. */
  data?: Uint8Array;
  external?: { location: string; offset: number; length?: number };
}

export function parseTensor(raw: Uint8Array): ParsedTensor {
  const tensor: ParsedTensor = { raw, name: '', dims: [], dataType: 0 };
  const external: Record<string, string> = {};
  let floats: number[] | undefined;
  for (const f of readFields(raw)) {
    if (f.field === 1) {
      if (f.wire === 0) tensor.dims.push(Number(f.value));
      else {
        let p = 0;
        while (p < f.payload!.length) {
          const [v, next] = readVarint(f.payload!, p);
          tensor.dims.push(Number(v));
          p = next;
        }
      }
    } else if (f.field === 2) tensor.dataType = Number(f.value);
    else if (f.field === 8) tensor.name = text(f.payload);
    else if (f.field === 9) tensor.data = f.payload;
    else if (f.field === 4) {
      const payload = f.wire === 2 ? f.payload! : f.bytes.subarray(f.bytes.length - 4);
      const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
      floats ??= [];
      for (let p = 0; p < payload.length; p += 4) floats.push(view.getFloat32(p, true));
    } else if (f.field === 13) {
      let key = '';
      let value = '';
      for (const e of readFields(f.payload!)) {
        if (e.field === 1) key = text(e.payload);
        else if (e.field === 2) value = text(e.payload);
      }
      external[key] = value;
    }
  }
  if (floats) tensor.data = new Uint8Array(Float32Array.from(floats).buffer);
  if (external.location) {
    tensor.external = { location: external.location, offset: Number(external.offset ?? 0), ...(external.length ? { length: Number(external.length) } : {}) };
  }
  return tensor;
}
