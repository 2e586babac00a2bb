/**
 * The parts of `dfd backend install tensorflow` that can be checked without the 207 MB wheel: the zip
 * reader (against zips Python's zipfile writes, zip64 included), the CPython stub library (compiled with
 * the real C compiler and read back with nm), the missing-tool error, and the command's usage errors.
 * The whole route runs in CI (`npm run setup:tensorflow`, then the suites on DFD_BACKEND=tensorflow).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { extractMember, listZip, ZipError } from '../src/native/zip.js';
import { prepareLinkLibraries, stubSource, undefinedPythonSymbols, defaultCacheDir } from '../src/native/libtensorflow.js';
import { NativeInstallError, requireTools, which } from '../src/native/tools.js';
import { cliMain } from '@dfd/core';
import { captureIo } from './support/capture-io.js';

const dir = () => mkdtempSync(join(tmpdir(), 'dfd-native-'));

function pythonZip(path: string, members: Record<string, string>, zip64: boolean): void {
  // open(force_zip64=True) writes zip64 local headers (extra fields the reader must skip).
  const simple = `
import json, sys, zipfile
members = json.loads(sys.argv[2])
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    for i, (name, text) in enumerate(members.items()):
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED if i % 2 == 0 else zipfile.ZIP_STORED
        with z.open(info, 'w', force_zip64=${zip64 ? 'True' : 'False'}) as f:
            f.write(text.encode())
`;
  execFileSync('python3', ['-c', simple, path, JSON.stringify(members)]);
}

describe('zip reader', () => {
  test.each([false, true])('extracts deflated, stored and empty members (zip64 local headers: %s)', async (zip64) => {
    const work = dir();
    const zip = join(work, 'w.whl');
    const members = {
      'tensorflow/include/tensorflow/c/c_api.h': '/* header */\n'.repeat(500),
      'tensorflow/python/lib.so': 'stored bytes',
      'empty.txt': '',
    };
    pythonZip(zip, members, zip64);
    const listed = listZip(zip);
    expect(listed.map((m) => m.name)).toEqual(Object.keys(members));
    expect(listed.map((m) => m.method)).toEqual([8, 0, 8]);
    for (const member of listed) {
      const out = join(work, 'out', member.name);
      await extractMember(zip, member, out);
      expect(readFileSync(out, 'utf8')).toBe(members[member.name as keyof typeof members]);
    }
  });

  test('a file that is not a zip (a truncated download) is a clear error', () => {
    const bad = join(dir(), 'bad.whl');
    writeFileSync(bad, 'PK not really');
    expect(() => listZip(bad)).toThrow(ZipError);
    expect(() => listZip(bad)).toThrow(/not a zip file.*truncated download\? Delete it and retry/);
  });
});

describe('CPython stub library', () => {
  test.runIf(Boolean(which(['cc']) && which(['nm'])))('defines every symbol the library lacks, and a linker script resolves -ltensorflow', async () => {
    const work = dir();
    const libDir = join(work, 'lib');
    // A stand-in for TensorFlow's library: references two CPython symbols it does not define.
    const lib = join(work, 'needs_python.c');
    writeFileSync(lib, 'extern int PyFloat_Type; extern void _Py_Dealloc(void*);\nint tf_version(void) { _Py_Dealloc(&PyFloat_Type); return 2; }\n');
    execFileSync('mkdir', ['-p', libDir]);
    execFileSync('cc', ['-shared', '-fPIC', '-o', join(libDir, '_pywrap_tensorflow_internal.so'), lib]);
    writeFileSync(join(libDir, 'libtensorflow_framework.so.2'), '');
    const tools = requireTools(['cc', 'nm']);
    expect(undefinedPythonSymbols(tools.nm!, join(libDir, '_pywrap_tensorflow_internal.so'))).toEqual(['PyFloat_Type', '_Py_Dealloc']);
    await prepareLinkLibraries({ libDir, includeDir: join(work, 'include'), addonDir: join(work, 'addon') }, { cc: tools.cc!, nm: tools.nm! }, process.env, () => {});
    const defined = execFileSync('nm', ['-D', '--defined-only', join(libDir, 'libdfd_pystub.so')], { encoding: 'utf8' });
    expect(defined).toMatch(/ T PyFloat_Type\n/);
    expect(defined).toMatch(/ T _Py_Dealloc\n/);
    // A program linked with -ltensorflow loads both libraries and runs (the stub is never called).
    // tf_version would call the stub (which aborts), so keep only its address: linked and loaded, not called.
    const main = join(work, 'main.c');
    writeFileSync(main, '#include <stdio.h>\nint tf_version(void);\nint (*keep)(void) = tf_version;\nint main(void) { printf("loaded"); return 0; }\n');
    execFileSync('cc', ['-o', join(work, 'main'), main, `-L${libDir}`, '-Wl,--no-as-needed', '-ltensorflow', `-Wl,-rpath,${libDir}`]);
    expect(execFileSync(join(work, 'main'), { encoding: 'utf8' })).toBe('loaded');
  });

  test('stub functions name themselves and abort', () => {
    const source = stubSource(['PyExc_TypeError', 'Py_IncRef']);
    expect(source).toContain('void PyExc_TypeError(void) { dfd_pystub_called("PyExc_TypeError"); }');
    expect(source).toContain('abort();');
  });
});

describe('installer errors', () => {
  test('missing tools are all named at once, each with why and how to get it', () => {
    let error: unknown;
    try {
      requireTools(['npm', 'python3', 'c++', 'make', 'nm'], { PATH: '/nonexistent' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(NativeInstallError);
    const message = (error as Error).message;
    for (const tool of ['npm', 'python3', 'C++ compiler', 'make', 'nm']) expect(message).toContain(`  - ${tool}: needed because`);
    expect(message).toMatch(/apt install g\+\+/);
  });

  test('the cache lives outside the project: ~/.cache/dfd/tensorflow, or DFD_CACHE_DIR', () => {
    expect(defaultCacheDir({ HOME: '/home/u' })).toBe('/home/u/.cache/dfd/tensorflow');
    expect(defaultCacheDir({ HOME: '/home/u', DFD_CACHE_DIR: '/scratch/dfd' })).toBe('/scratch/dfd/tensorflow');
  });

  test('dfd backend install takes only tensorflow, and a given wheel must be PyPI\'s file', async () => {
    const io = captureIo();
    expect(await cliMain(['backend', 'install', 'pytorch'], { ...io.io, cwd: dir(), env: {} })).toBe(2);
    expect(io.err()).toMatch(/the only installable backend is `tensorflow`/);
    const fake = join(dir(), 'tensorflow_cpu.whl');
    writeFileSync(fake, 'not the wheel');
    const io2 = captureIo();
    expect(await cliMain(['backend', 'install', 'tensorflow', '--wheel', fake, '--cache-dir', dir()], { ...io2.io, cwd: dir(), env: {} })).toBe(1);
    expect(io2.err()).toMatch(/sha256 [0-9a-f]{64} is not PyPI's tensorflow_cpu-2\.9\.1-.*\.whl/);
  });
});
