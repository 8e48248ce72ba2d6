import { parseRuntime } from '../../api/versions.js';
import type { ExecResult } from '../../agent/node-facts.js';
import {
  defaultRuntimeConfigPaths, merge, readRestoreSupport, readRuntimeConfigs, restoreSupport, splitGlob, type ConfigFile, type ConfigSources, type RestoreSupport,
} from '../../agent/runtime-restore.js';

const CTRD = '/etc/containerd/config.toml';
const CRIO = '/etc/crio/crio.conf';
const DROP = '/etc/crio/crio.conf.d';
const file = (path: string, text: string): ConfigFile => ({ path, text });
const missing = (path: string): ConfigFile => ({ path, missing: true });

const V3_ON = `version = 3
[plugins.'io.containerd.cri.v1.runtime']
  enable_criu = true
  enable_experimental_restore_via_create = true
  restrict_oom_score_adj = true
`;
const V2_ON = `version = 2
[plugins."io.containerd.grpc.v1.cri"]
  enable_criu = true
  enable_experimental_restore_via_create = true
`;
const V3_TABLE = "[plugins.'io.containerd.cri.v1.runtime']";
const V2_TABLE = '[plugins."io.containerd.grpc.v1.cri"]';
const SET_BOTH = 'set enable_criu = true and enable_experimental_restore_via_create = true';

interface Want { capable: boolean; reason: string | RegExp }
type Row = [name: string, runtime: string | undefined, files: ConfigFile[], want: Want];

/** A reason that contains `text`. */
const has = (text: string): RegExp => new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

function check(got: RestoreSupport, want: Want): void {
  expect(got.capable).toBe(want.capable);
  if (typeof want.reason === 'string') expect(got.reason).toBe(want.reason);
  else expect(got.reason).toMatch(want.reason);
}

describe('restoreSupport: containerd', () => {
  it.each<Row>([
    ['1.7 is too old', 'containerd://1.7.27', [], { capable: false, reason: 'containerd 1.7.27 cannot restore from a checkpoint image (restore via CreateContainer arrived in containerd 2.1); upgrade to containerd 2.1–2.3 or use CRI-O ≥ 1.26' }],
    ['2.0.9 is too old', 'containerd://2.0.9', [file(CTRD, V3_ON)], { capable: false, reason: /^containerd 2\.0\.9 cannot restore/ }],
    ['2.1.0 restores with no switch', 'containerd://2.1.0', [missing(CTRD)], { capable: true, reason: 'restore enabled (containerd 2.1.0: restore via CreateContainer has no switch before 2.2)' }],
    ['2.1.9 ignores a config that lacks the switches', 'containerd://2.1.9', [file(CTRD, 'version = 3\n')], { capable: true, reason: /^restore enabled \(containerd 2\.1\.9/ }],
    ['2.2.0, both switches on (v3)', 'containerd://2.2.0', [file(CTRD, V3_ON)], { capable: true, reason: 'restore enabled (containerd 2.2.0, enable_criu = true and enable_experimental_restore_via_create = true)' }],
    ['2.3.7, both switches on (v3)', 'containerd://2.3.7', [file(CTRD, V3_ON)], { capable: true, reason: 'restore enabled (containerd 2.3.7, enable_criu = true and enable_experimental_restore_via_create = true)' }],
    ['2.3.7, both switches on (v2)', 'containerd://2.3.7', [file(CTRD, V2_ON)], { capable: true, reason: 'restore enabled (containerd 2.3.7, enable_criu = true and enable_experimental_restore_via_create = true)' }],
    ['v1.2.3 style versions', 'containerd://v2.3.0', [file(CTRD, V3_ON)], { capable: true, reason: /^restore enabled \(containerd v2\.3\.0,/ }],
    ['2.3.7, version 1 layout', 'containerd://2.3.7', [file(CTRD, '[plugins.cri]\nenable_criu = true\nenable_experimental_restore_via_create = true\n')],
      { capable: true, reason: /^restore enabled/ }],
    ['2.3.7, restore switch missing (v3)', 'containerd://2.3.7', [file(CTRD, `version = 3\n${V3_TABLE}\n  enable_criu = true\n`)],
      { capable: false, reason: `containerd 2.3.7: restore via CreateContainer is off (enable_experimental_restore_via_create is not set); set enable_experimental_restore_via_create = true under ${V3_TABLE} in ${CTRD}` }],
    ['2.3.7, restore switch false, criu missing (v3)', 'containerd://2.3.7', [file(CTRD, `version = 3\n${V3_TABLE}\n  enable_experimental_restore_via_create = false\n`)],
      { capable: false, reason: `containerd 2.3.7: restore via CreateContainer is off (enable_criu is not set, enable_experimental_restore_via_create = false); ${SET_BOTH} under ${V3_TABLE} in ${CTRD}` }],
    ['2.2.0, a string is not a boolean (v2)', 'containerd://2.2.0', [file(CTRD, `version = 2\n${V2_TABLE}\n  enable_criu = true\n  enable_experimental_restore_via_create = "true"\n`)],
      { capable: false, reason: `containerd 2.2.0: restore via CreateContainer is off (enable_experimental_restore_via_create = "true", not a boolean); set enable_experimental_restore_via_create = true under ${V2_TABLE} in ${CTRD}` }],
    ['2.3.7, switches in the v2 table of a v3 config', 'containerd://2.3.7', [file(CTRD, V2_ON.replace('version = 2', 'version = 3'))],
      { capable: false, reason: `containerd 2.3.7: restore via CreateContainer is off (enable_criu is not set, enable_experimental_restore_via_create is not set); ${SET_BOTH} under ${V3_TABLE} in ${CTRD}; ${V2_TABLE} is where a version 2 config has them, this one is version 3` }],
    ['2.3.7, switches in the v3 table of a v2 config', 'containerd://2.3.7', [file(CTRD, V3_ON.replace('version = 3', 'version = 2'))],
      { capable: false, reason: has(`under ${V2_TABLE} in ${CTRD}; ${V3_TABLE} is where a version 3 config has them, this one is version 2`) }],
    ['2.3.7, an unknown config version', 'containerd://2.3.7', [file(CTRD, 'version = 4\n')],
      { capable: false, reason: `containerd 2.3.7: ${CTRD} says version = 4, which containerd does not know (1, 2 or 3)` }],
    ['2.3.7, no config file', 'containerd://2.3.7', [missing(CTRD)],
      { capable: false, reason: `containerd 2.3.7: restore via CreateContainer is off by default and ${CTRD} does not exist; create it (version = 3) with enable_criu = true and enable_experimental_restore_via_create = true under ${V3_TABLE}` }],
    ['2.3.7, config unreadable', 'containerd://2.3.7', [{ path: CTRD, unreadable: 'cat: /etc/containerd/config.toml: Permission denied' }],
      { capable: false, reason: `containerd 2.3.7: cannot read ${CTRD}: cat: /etc/containerd/config.toml: Permission denied` }],
    ['2.3.7, unparseable TOML', 'containerd://2.3.7', [file(CTRD, 'version = 3\n[plugins.\'io.containerd.cri.v1.runtime\'\nenable_criu = true\n')],
      { capable: false, reason: /^containerd 2\.3\.7: cannot parse \/etc\/containerd\/config\.toml at line 2: Invalid TOML document: .+; whether restore is switched on is unknown$/ }],
    ['2.3.7, a later file turns it off', 'containerd://2.3.7', [file(CTRD, V3_ON), file('/etc/containerd/conf.d/off.toml', `${V3_TABLE}\nenable_experimental_restore_via_create = false\n`)],
      { capable: false, reason: has('(enable_experimental_restore_via_create = false)') }],
    ['2.3.7, a later file turns it on', 'containerd://2.3.7', [file(CTRD, 'version = 3\n'), file('/etc/containerd/conf.d/on.toml', V3_ON)],
      { capable: true, reason: /^restore enabled/ }],
    ['2.3.99 is still 2.3', 'containerd://2.3.99', [file(CTRD, V3_ON)], { capable: true, reason: /^restore enabled/ }],
    ['2.4.0 removed it, whatever the config says', 'containerd://2.4.0', [file(CTRD, V3_ON)],
      { capable: false, reason: 'containerd 2.4.0 removed restore from a checkpoint image (KEP-5823 RestorePod replaces it); nodes that should restore need containerd 2.1–2.3 or CRI-O ≥ 1.26' }],
    ['2.4.0-rc.1 counts as 2.4', 'containerd://2.4.0-rc.1', [file(CTRD, V3_ON)], { capable: false, reason: /^containerd 2\.4\.0-rc\.1 removed restore/ }],
    ['3.0.0 as well', 'containerd://3.0.0', [], { capable: false, reason: /removed restore/ }],
  ])('%s', (_name, runtime, files, want) => {
    check(restoreSupport(parseRuntime(runtime), files), want);
  });
});

const LEVEL = '[crio.checkpoint_restore]\ncontainer_level_enabled = "checkpoint_restore"\n';
const CRIU_ON = '[crio.runtime]\nenable_criu_support = true\n';
const SET_LEVEL = `set container_level_enabled = "checkpoint_restore" under [crio.checkpoint_restore] in ${CRIO} or a drop-in in /etc/crio/crio.conf.d/`;

describe('restoreSupport: CRI-O', () => {
  it.each<Row>([
    ['1.25.9 is too old', 'cri-o://1.25.9', [file(CRIO, CRIU_ON)], { capable: false, reason: 'CRI-O 1.25.9 cannot restore from a checkpoint image (needs CRI-O ≥ 1.26); upgrade CRI-O' }],
    ['1.26.0 with enable_criu_support', 'cri-o://1.26.0', [file(CRIO, CRIU_ON)], { capable: true, reason: 'restore enabled (CRI-O 1.26.0, enable_criu_support = true)' }],
    ['1.29.9 without enable_criu_support', 'cri-o://1.29.9', [missing(CRIO)],
      { capable: false, reason: `CRI-O 1.29.9: restore is off: enable_criu_support is not set; set enable_criu_support = true under [crio.runtime] in ${CRIO} or a drop-in in /etc/crio/crio.conf.d/` }],
    ['1.28.0 with enable_criu_support = false in a drop-in', 'cri-o://1.28.0', [file(CRIO, CRIU_ON), file(`${DROP}/10-off.conf`, '[crio.runtime]\nenable_criu_support = false\n')],
      { capable: false, reason: `CRI-O 1.28.0: restore is off: enable_criu_support = false (in ${DROP}/10-off.conf); set enable_criu_support = true under [crio.runtime] in ${CRIO} or a drop-in in /etc/crio/crio.conf.d/` }],
    ['1.29.0 ignores container_level_enabled', 'cri-o://1.29.0', [file(CRIO, LEVEL)], { capable: false, reason: has('enable_criu_support is not set') }],
    ['1.30.0 with checkpoint_restore', 'cri-o://1.30.0', [file(CRIO, LEVEL)], { capable: true, reason: 'restore enabled (CRI-O 1.30.0, container_level_enabled = "checkpoint_restore")' }],
    ['1.34.0 without the key: default checkpoint_only', 'cri-o://1.34.0', [file(CRIO, CRIU_ON)],
      { capable: false, reason: `CRI-O 1.34.0: restore is off: container_level_enabled is not set (default "checkpoint_only"); ${SET_LEVEL}` }],
    ['1.33.2 with checkpoint_only set in a drop-in', 'cri-o://1.33.2', [missing(CRIO), file(`${DROP}/20-cr.conf`, '[crio.checkpoint_restore]\ncontainer_level_enabled = "checkpoint_only"\n')],
      { capable: false, reason: `CRI-O 1.33.2: restore is off: container_level_enabled = "checkpoint_only" (in ${DROP}/20-cr.conf); ${SET_LEVEL}` }],
    ['1.33.2: the later drop-in wins', 'cri-o://1.33.2', [file(CRIO, '[crio.checkpoint_restore]\ncontainer_level_enabled = "checkpoint_only"\n'), file(`${DROP}/20-cr.conf`, LEVEL)],
      { capable: true, reason: 'restore enabled (CRI-O 1.33.2, container_level_enabled = "checkpoint_restore")' }],
    ['1.35.1 with checkpoint_restore but enable_criu_support = false', 'cri-o://1.35.1', [file(CRIO, `${LEVEL}[crio.runtime]\nenable_criu_support = false\n`)],
      { capable: false, reason: `CRI-O 1.35.1: enable_criu_support = false (in ${CRIO}) turns checkpoint/restore off; set it to true under [crio.runtime]` }],
    ['1.33.2 with a signature policy', 'cri-o://1.33.2', [file(CRIO, `${LEVEL}[crio.image]\nsignature_policy = "/etc/containers/policy.json"\n`)],
      { capable: false, reason: `CRI-O 1.33.2: [crio.image] signature_policy = "/etc/containers/policy.json" (in ${CRIO}) makes CRI-O refuse every restore ("signature validation is not supported for container restore"); remove it (the system default policy is used then)` }],
    ['1.33.2 with an empty signature policy', 'cri-o://1.33.2', [file(CRIO, `${LEVEL}[crio.image]\nsignature_policy = ""\n`)], { capable: true, reason: /^restore enabled/ }],
    ['1.34.0 switch off and a signature policy: both named', 'cri-o://1.34.0', [file(CRIO, '[crio.image]\nsignature_policy = "/p.json"\n')],
      { capable: false, reason: /^CRI-O 1\.34\.0: restore is off: container_level_enabled is not set .*; \[crio\.image\] signature_policy = "\/p\.json"/ }],
    ['no files at all on 1.34.0', 'cri-o://1.34.0', [], { capable: false, reason: has('container_level_enabled is not set (default "checkpoint_only")') }],
    ['an unparseable drop-in', 'cri-o://1.34.0', [file(CRIO, LEVEL), file(`${DROP}/99-bad.conf`, '[crio.runtime\n')],
      { capable: false, reason: /^CRI-O 1\.34\.0: cannot parse \/etc\/crio\/crio\.conf\.d\/99-bad\.conf at line 1: .+; whether restore is switched on is unknown$/ }],
  ])('%s', (_name, runtime, files, want) => {
    check(restoreSupport(parseRuntime(runtime), files), want);
  });
});

describe('restoreSupport: other runtimes', () => {
  it.each<Row>([
    ['no runtime reported', undefined, [], { capable: false, reason: 'the Node reports no container runtime version (status.nodeInfo.containerRuntimeVersion), so whether it can restore is unknown' }],
    ['no version', 'garbage', [], { capable: false, reason: /^the Node reports no container runtime version/ }],
    ['docker', 'docker://28.0.1', [], { capable: false, reason: 'runtime docker 28.0.1 cannot restore from a checkpoint image; Lazarus restores on CRI-O ≥ 1.26 and containerd 2.1–2.3' }],
  ])('%s', (_name, runtime, files, want) => {
    check(restoreSupport(parseRuntime(runtime), files), want);
  });
});

describe('configuration files', () => {
  it.each([
    ['containerd', [CTRD]],
    ['cri-o', [CRIO, '/etc/crio/crio.conf.d/*.conf']],
    ['docker', []],
    [undefined, []],
  ])('default paths for %s', (name, want) => expect(defaultRuntimeConfigPaths(name)).toEqual(want));

  it('merges tables key by key and leaves its inputs alone', () => {
    const a = { crio: { runtime: { enable_criu_support: true, x: 1 }, list: [1] } };
    const b = { crio: { runtime: { enable_criu_support: false }, list: [2] } };
    expect(merge(a, b)).toEqual({ crio: { runtime: { enable_criu_support: false, x: 1 }, list: [2] } });
    expect(a).toEqual({ crio: { runtime: { enable_criu_support: true, x: 1 }, list: [1] } });
  });

  it.each([
    ['/etc/crio/crio.conf.d/*.conf', '/etc/crio/crio.conf.d', ['10-a.conf', 'b.conf'], ['x.conf.bak', 'conf', '.conf.d']],
    ['/etc/*', '/etc', ['a', '.b'], []],
    ['/x*.toml', '/', ['x.toml', 'x1.toml'], ['y.toml']],
  ])('splitGlob(%s)', (pattern, dir, yes, no) => {
    const g = splitGlob(pattern);
    expect(g?.dir).toBe(dir);
    for (const n of yes) expect(g?.match.test(n)).toBe(true);
    for (const n of no) expect(g?.match.test(n)).toBe(false);
  });

  it('a plain path is no glob', () => expect(splitGlob(CRIO)).toBeUndefined());

  /** A host with these files (and directories listed by what is under them). */
  function host(files: Record<string, string | Error>): { src: ConfigSources; calls: string[][] } {
    const calls: string[][] = [];
    const src: ConfigSources = {
      exec: (cmd, args) => {
        calls.push([cmd, ...args]);
        const i = args.lastIndexOf('--');
        const verb = args[i - 1] === '-1A' ? 'ls' : args[i - 1] ?? cmd;
        const target = args[i + 1] ?? '';
        const answer = (r: Partial<ExecResult>): Promise<ExecResult> => Promise.resolve({ code: 0, stdout: '', stderr: '', ...r });
        if (verb === 'cat') {
          const f = files[target];
          if (f === undefined) return answer({ code: 1, stderr: `cat: ${target}: No such file or directory\n` });
          if (f instanceof Error) return answer({ code: 1, stderr: `cat: ${target}: ${f.message}\n` });
          return answer({ stdout: f });
        }
        const under = Object.keys(files).filter((p) => p.startsWith(`${target}/`)).map((p) => p.slice(target.length + 1));
        if (under.length === 0) return answer({ code: 2, stderr: `ls: cannot access '${target}': No such file or directory\n` });
        return answer({ stdout: `${under.reverse().join('\n')}\n` });
      },
    };
    return { src, calls };
  }

  it('reads files and globbed drop-ins in lexical order through the host prefix', async () => {
    const { src, calls } = host({ [CRIO]: 'a', [`${DROP}/20-b.conf`]: 'c', [`${DROP}/10-a.conf`]: 'b', [`${DROP}/README`]: 'no' });
    const files = await readRuntimeConfigs(src, ['nsenter', '--target', '1', '--mount', '--'], [CRIO, `${DROP}/*.conf`]);
    expect(files).toEqual([file(CRIO, 'a'), file(`${DROP}/10-a.conf`, 'b'), file(`${DROP}/20-b.conf`, 'c')]);
    expect(calls[0]).toEqual(['nsenter', '--target', '1', '--mount', '--', 'cat', '--', CRIO]);
    expect(calls[1]).toEqual(['nsenter', '--target', '1', '--mount', '--', 'ls', '-1A', '--', DROP]);
  });

  it('runs cat itself with no host prefix; missing files and directories are not errors', async () => {
    const { src, calls } = host({});
    expect(await readRuntimeConfigs(src, [], [CRIO, `${DROP}/*.conf`])).toEqual([missing(CRIO)]);
    expect(calls[0]).toEqual(['cat', '--', CRIO]);
  });

  it('says why a file could not be read', async () => {
    const { src } = host({ [CTRD]: new Error('Permission denied') });
    expect(await readRuntimeConfigs(src, [], [CTRD])).toEqual([{ path: CTRD, unreadable: `cat: ${CTRD}: Permission denied` }]);
  });

  it('a prefix that cannot run at all makes every file unreadable', async () => {
    const src: ConfigSources = { exec: () => Promise.reject(new Error('spawn nsenter ENOENT')) };
    expect(await readRuntimeConfigs(src, ['nsenter', '--'], [CTRD])).toEqual([{ path: CTRD, unreadable: 'spawn nsenter ENOENT' }]);
  });

  it.each([
    ['containerd defaults', 'containerd://2.3.7', [], { [CTRD]: V3_ON }, true],
    ['cri-o defaults, drop-in enables', 'cri-o://1.33.2', [], { [`${DROP}/50-restore.conf`]: LEVEL }, true],
    ['explicit paths replace the defaults', 'cri-o://1.33.2', ['/srv/crio.conf'], { [CRIO]: LEVEL, '/srv/crio.conf': '' }, false],
  ])('readRestoreSupport: %s', async (_name, runtime, paths, files, capable) => {
    expect((await readRestoreSupport(host(files).src, [], paths, runtime)).capable).toBe(capable);
  });
});
