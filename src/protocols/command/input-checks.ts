/**
 * Input checks of command connections: the connection's `guardrails.deny` patterns over what the
 * caller sends.
 *
 * - One-off runs (pipes): the extra arguments and the whole standard input are checked before the
 *   command starts; a match refuses the run.
 * - Interactive sessions (pty): best effort. Keystrokes are assembled into lines as a line editor
 *   would (printable characters, backspace, Ctrl-U, Ctrl-W, Ctrl-C; Enter, Ctrl-J and bash's Ctrl-O
 *   submit); each submitted line is checked
 *   and recorded. A line recalled from history, completed with Tab or edited with cursor keys is
 *   only partly known here and is marked `uncertain`; a user at a shell can always construct a
 *   command the patterns do not see. Deny patterns catch mistakes; the `runAs` user's permissions
 *   are the boundary.
 */
import type { CommandConnection } from '../../config/index.js'

export interface DenyRule {
  /** `deny[N]`, the rule's position in the configuration. */
  id: string
  pattern: RegExp
  message: string
}

/** The connection's deny patterns, compiled: JavaScript syntax, `m` (multiline) and `u` flags, case-sensitive. */
export function compileDenyRules(connection: CommandConnection): DenyRule[] {
  return (connection.guardrails?.deny ?? []).map((rule, index) => ({
    id: `deny[${index}]`,
    pattern: compilePattern(rule.pattern),
    message: rule.message ?? 'this input is not allowed on this connection',
  }))
}

function compilePattern(source: string): RegExp {
  // The configuration schema accepts a pattern only if it compiles with and without `u`.
  try {
    return new RegExp(source, 'mu')
  } catch {
    return new RegExp(source, 'm')
  }
}

/**
 * The first rule that matches `text`, if any; also with its NUL characters removed, as a shell
 * reading a script drops them (`rm -\0rf` runs as `rm -rf`).
 */
export function findDenied(rules: readonly DenyRule[], text: string): DenyRule | undefined {
  const found = rules.find((rule) => rule.pattern.test(text))
  if (found !== undefined || !text.includes('\0')) return found
  const withoutNul = text.replaceAll('\0', '')
  return rules.find((rule) => rule.pattern.test(withoutNul))
}

export interface SubmittedLine {
  text: string
  /** Cursor keys, Tab or an unknown escape sequence were used: the real line may differ. */
  uncertain: boolean
}

const enum Key {
  Interrupt = 0x03,
  EndOfFile = 0x04,
  Backspace = 0x08,
  Tab = 0x09,
  LineFeed = 0x0a,
  CarriageReturn = 0x0d,
  /** bash's operate-and-get-next: submits the line, then edits the next one from history. */
  SubmitAndRecall = 0x0f,
  KillLine = 0x15,
  KillWord = 0x17,
  Escape = 0x1b,
  Delete = 0x7f,
}

const enum KeyParse {
  Text,
  Escape,
  Sequence,
  Paste,
}

/** Longest line kept; beyond it the line is truncated (and marked uncertain). */
const MAX_LINE = 16 * 1024
const PASTE_START = '200~'
const PASTE_END = '201~'

/**
 * Keystrokes → submitted lines. `feed` returns, for each submit key (Enter) in the chunk, the line
 * and the index of that key in the chunk, so the caller can hold back a line that is denied.
 */
export class LineAssembler {
  private line = ''
  private uncertain = false
  private state = KeyParse.Text
  private sequence = ''
  private readonly decoder = new TextDecoder('utf-8', { fatal: false })

  feed(chunk: Buffer): { line: SubmittedLine; at: number }[] {
    const submitted: { line: SubmittedLine; at: number }[] = []
    let textStart = -1
    const flushText = (end: number): void => {
      if (textStart < 0) return
      this.append(this.decoder.decode(chunk.subarray(textStart, end), { stream: true }))
      textStart = -1
    }
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!
      if (this.state === KeyParse.Escape) {
        this.state = byte === 0x5b || byte === 0x4f ? KeyParse.Sequence : KeyParse.Text
        this.sequence = ''
        if (this.state === KeyParse.Text) this.uncertain = true
        continue
      }
      if (this.state === KeyParse.Sequence) {
        this.sequence += String.fromCharCode(byte)
        if (byte >= 0x40 && byte <= 0x7e) {
          // Bracketed paste wraps pasted text in ESC[200~ … ESC[201~; anything else moves the cursor.
          if (this.sequence === PASTE_START) this.state = KeyParse.Text
          else if (this.sequence === PASTE_END) this.state = KeyParse.Text
          else {
            this.uncertain = true
            this.state = KeyParse.Text
          }
        } else if (this.sequence.length > 16) {
          this.uncertain = true
          this.state = KeyParse.Text
        }
        continue
      }
      if (byte >= 0x20 && byte !== Key.Delete) {
        if (textStart < 0) textStart = i
        continue
      }
      flushText(i)
      switch (byte) {
        case Key.CarriageReturn:
        case Key.LineFeed:
        case Key.SubmitAndRecall:
          submitted.push({ line: { text: this.line, uncertain: this.uncertain }, at: i })
          this.line = ''
          // After Ctrl-O the next line starts as a history entry not known here.
          this.uncertain = byte === Key.SubmitAndRecall
          break
        case Key.Delete:
        case Key.Backspace:
          this.line = dropLastCharacter(this.line)
          break
        case Key.KillLine:
        case Key.Interrupt:
          this.line = ''
          this.uncertain = false
          break
        case Key.KillWord:
          this.line = dropLastWord(this.line)
          break
        case Key.Tab:
          this.append('\t')
          this.uncertain = true
          break
        case Key.Escape:
          this.state = KeyParse.Escape
          break
        case Key.EndOfFile:
          break
        default:
          // Other control keys (Ctrl-A, Ctrl-E, Ctrl-R, ...) edit the line in ways not followed here.
          this.uncertain = true
      }
    }
    flushText(chunk.length)
    return submitted
  }

  private append(text: string): void {
    if (this.line.length + text.length > MAX_LINE) {
      this.line = (this.line + text).slice(0, MAX_LINE)
      this.uncertain = true
    } else {
      this.line += text
    }
  }
}

// Editing from the end of the line costs what it removes, not the line's length: a chunk of 1 MB
// of edit keys must not stall the gateway.

/** `line` without its last character (a surrogate pair is one). */
function dropLastCharacter(line: string): string {
  const last = line.charCodeAt(line.length - 1)
  return line.slice(0, line.length - (last >= 0xdc00 && last <= 0xdfff && line.length > 1 ? 2 : 1))
}

/** `line` without its last word and the whitespace after it, as Ctrl-W (unix-word-rubout). */
function dropLastWord(line: string): string {
  let end = line.length
  while (end > 0 && /\s/u.test(line[end - 1]!)) end--
  if (end === 0) return line
  while (end > 0 && !/\s/u.test(line[end - 1]!)) end--
  return line.slice(0, end)
}
