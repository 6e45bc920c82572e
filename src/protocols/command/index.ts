/**
 * Command connections: the gateway engine (pty and pipes), the credential canary as a stream, input
 * checks, asciicast recordings and their replay, and the CLI's side of a command session.
 */
export { CanaryAutomaton, canaryForms, MIN_DERIVED_FORM } from './canary.js'
export { CANARY_MARKER, type CanaryStreamOptions, type CanaryStreamStats, createCanaryStream } from './canary-stream.js'
export { type CommandEngineOptions, createCommandEngine, type MaskerContext } from './engine.js'
export { type CommandSessionIo, runCommandSession } from './front.js'
export { compileDenyRules, type DenyRule, findDenied, LineAssembler, type SubmittedLine } from './input-checks.js'
export { chainMaskers, IDLE_RELEASE_MS, type OutputMasker } from './masker.js'
export { createRecorder, type Recorder, type RecorderOptions, type RecordingHeader } from './recording.js'
export { replayRecording, type ReplayOptions, type ReplayResult } from './replay.js'
