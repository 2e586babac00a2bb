/**
 * The stage-2 and fusion parity tests read one PyTorch fixture (tools/fixtures/fusion); its helpers live with
 * plugin-lare's tests, and the fusion tests use the same ones.
 */
export * from '../../plugin-lare/test/support.js';
