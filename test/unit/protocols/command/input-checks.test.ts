import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../../../src/config/index.js'
import type { CommandConnection } from '../../../../src/config/index.js'
import { compileDenyRules, findDenied, LineAssembler } from '../../../../src/protocols/command/input-checks.js'

function connection(deny: { pattern: string; message?: string }[]): CommandConnection {
  const config = parseConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      connections: [{ name: 'ops', type: 'command', command: ['bash'], runAs: 'nobody', access: { groups: ['eng'] }, guardrails: { deny } }],
    },
    '/tmp',
  )
  return config.connections[0] as CommandConnection
}

describe('deny rules', () => {
  const rules = compileDenyRules(connection([{ pattern: 'rm\\s+-[a-z]*r', message: 'no recursive deletes' }, { pattern: '^\\s*shutdown\\b' }]))

  it('name the rule by position and keep its message (or a default)', () => {
    expect(findDenied(rules, 'rm  -rf /tmp/x')).toMatchObject({ id: 'deny[0]', message: 'no recursive deletes' })
    expect(findDenied(rules, 'shutdown -h now')?.id).toBe('deny[1]')
    expect(findDenied(rules, 'shutdown -h now')?.message).toMatch(/not allowed/)
  })

  it('see through NUL characters, which a shell reading a script drops', () => {
    expect(findDenied(rules, 'rm -\0rf /tmp/x\n')?.id).toBe('deny[0]')
    expect(findDenied(rules, 'shut\0down now')?.id).toBe('deny[1]')
    expect(findDenied(rules, 'echo \0 fine')).toBeUndefined()
  })

  it('see the whole input: ^ and $ match at every line (multiline)', () => {
    expect(findDenied(rules, 'echo fine\n  shutdown now\n')?.id).toBe('deny[1]')
    expect(findDenied(rules, 'echo shutdown')).toBeUndefined()
    expect(findDenied(rules, 'ls -la\ncat notes')).toBeUndefined()
  })
})

describe('LineAssembler', () => {
  const feed = (assembler: LineAssembler, text: string) => assembler.feed(Buffer.from(text, 'utf8'))

  it('submits a line at Enter and says where the Enter was', () => {
    const assembler = new LineAssembler()
    expect(feed(assembler, 'ls -l')).toEqual([])
    expect(feed(assembler, 'a\rpwd\r')).toEqual([
      { line: { text: 'ls -la', uncertain: false }, at: 1 },
      { line: { text: 'pwd', uncertain: false }, at: 5 },
    ])
  })

  it("submits at bash's Ctrl-O (operate-and-get-next) too; the line after it is not known", () => {
    const assembler = new LineAssembler()
    expect(feed(assembler, 'rm -rf /tmp/x\x0f\r')).toEqual([
      { line: { text: 'rm -rf /tmp/x', uncertain: false }, at: 13 },
      { line: { text: '', uncertain: true }, at: 14 },
    ])
    expect(feed(assembler, 'ls\n')).toEqual([{ line: { text: 'ls', uncertain: false }, at: 2 }])
  })

  it('follows backspace, DEL, Ctrl-U, Ctrl-W and Ctrl-C as a line editor does', () => {
    const assembler = new LineAssembler()
    expect(feed(assembler, 'rx\x7fm -rf\bf /tmp\x17/var\r')[0]!.line.text).toBe('rm -rf /var')
    expect(feed(assembler, 'garbage\x15echo ok\r')[0]!.line.text).toBe('echo ok')
    expect(feed(assembler, 'sleep 9\x03ls\r')[0]!.line.text).toBe('ls')
  })

  it('marks lines edited with cursor keys or Tab as uncertain, but not bracketed pastes', () => {
    const assembler = new LineAssembler()
    expect(feed(assembler, 'ls\x1b[D\x1b[Dx\r')[0]!.line).toEqual({ text: 'lsx', uncertain: true })
    expect(feed(assembler, 'cat /et\tpasswd\r')[0]!.line.uncertain).toBe(true)
    expect(feed(assembler, '\x1b[200~rm -rf /\x1b[201~\r')[0]!.line).toEqual({ text: 'rm -rf /', uncertain: false })
  })

  it('caps a line at 16 KiB whatever the keys (Tab too) and edits it from the end', () => {
    const assembler = new LineAssembler()
    expect(assembler.feed(Buffer.alloc(1 << 20, '\t'))).toEqual([])
    const tabs = feed(assembler, '\r')[0]!.line
    expect(tabs.text.length).toBe(16 * 1024)
    expect(tabs.uncertain).toBe(true)
    expect(feed(assembler, `${'a'.repeat(16 * 1024)}${'\x7f'.repeat(16 * 1024)}ok\r`)[0]!.line.text).toBe('ok')
    expect(feed(assembler, `${'w '.repeat(5000)}x😀😀\x7f\r`)[0]!.line.text).toBe(`${'w '.repeat(5000)}x😀`)
    expect(feed(assembler, 'echo one  two \t\x17\r')[0]!.line.text).toBe('echo one  ')
    expect(feed(assembler, '   \x17\r')[0]!.line.text).toBe('   ')
  })

  it('decodes UTF-8 split across chunks', () => {
    const assembler = new LineAssembler()
    const bytes = Buffer.from('echo héllo\r')
    const cut = bytes.indexOf(0xc3) + 1
    expect(assembler.feed(bytes.subarray(0, cut))).toEqual([])
    expect(assembler.feed(bytes.subarray(cut))[0]!.line.text).toBe('echo héllo')
  })
})
