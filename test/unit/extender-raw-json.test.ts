import { encodeNodeList, locateItems } from '../../extender/raw-json.js';
import { fullArgs, goodNode, wirePod } from './extender-fixtures.js';

function itemsOf(text: string): unknown[] {
  return ((JSON.parse(text) as { Nodes: { items: unknown[] } }).Nodes.items);
}

describe('locateItems: byte spans of Nodes.items in an ExtenderArgs body', () => {
  it.each<[string, string]>([
    ['Go layout', JSON.stringify(fullArgs(wirePod(true), [goodNode('a'), goodNode('b', { arch: 'arm64' })]))],
    ['pretty-printed', JSON.stringify(fullArgs(wirePod(false), [goodNode('a'), goodNode('b')]), null, 2)],
    ['Nodes before Pod, tricky strings', '{"Nodes":{"items":[{"metadata":{"name":"x\\"}]{["}},{"metadata":{"name":"y\\\\"},"a":[1,[2,{"b":"]"}]]}],"metadata":{}},"Pod":{"metadata":{}},"NodeNames":null}'],
    ['non-ASCII bytes', '{"Pod":{},"Nodes":{"items":[{"metadata":{"name":"ノード-1","labels":{"x":"💥"}}},{"metadata":{"name":"n2"}}]}}'],
    ['escaped backslashes before quotes', '{"Pod":{},"Nodes":{"items":["a\\\\",{"k":"\\\"x\\\\\\\"y"},"\\\\\\\\"]}}'],
    ['a later items key wins', '{"Pod":{},"Nodes":{"items":[1,2],"metadata":{},"items":[3]}}'],
    ['scalars and empty containers as items', '{"Pod":{},"Nodes":{"items":[ 1 , -2.5e3 ,true,null,"s",{},[] ]}}'],
    ['empty items', '{"Pod":{},"Nodes":{"metadata":{},"items":[]},"NodeNames":null}'],
    ['duplicate Nodes key: the last wins', '{"Pod":{},"Nodes":{"items":[1,2,3]},"Nodes":{"items":[{"k":4}]}}'],
  ])('%s', (_name, text) => {
    const body = Buffer.from(text);
    const spans = locateItems(body.toString('latin1'));
    const items = itemsOf(text);
    expect(spans).toHaveLength(items.length);
    expect(spans?.map((s) => JSON.parse(body.subarray(s.start, s.end).toString('utf8')) as unknown)).toEqual(items);
  });

  it.each<[string, string]>([
    ['an escaped key that JSON.parse reads as Nodes', '{"Pod":{},"N\\u006fdes":{"items":[1]}}'],
    ['no Nodes', '{"Pod":{},"NodeNames":["a"]}'],
    ['items not an array', '{"Pod":{},"Nodes":{"items":null}}'],
    ['a later items key that is null', '{"Pod":{},"Nodes":{"items":[1],"items":null}}'],
    ['a later Nodes key that is null', '{"Pod":{},"Nodes":{"items":[1]},"Nodes":null}'],
    ['not an object', '[1,2]'],
    ['truncated', '{"Pod":{},"Nodes":{"items":[{"a":"b'],
  ])('gives up on %s', (_name, text) => {
    expect(locateItems(Buffer.from(text).toString('latin1'))).toBeUndefined();
  });
});

describe('encodeNodeList', () => {
  const text = JSON.stringify(fullArgs(wirePod(true), ['a', 'b', 'c', 'd', 'e'].map((n) => goodNode(n))));
  const body = Buffer.from(text);
  const spans = locateItems(body.toString('latin1')) ?? [];
  const items = itemsOf(text);

  it.each<[string, number[]]>([
    ['all (one run)', [0, 1, 2, 3, 4]],
    ['none', []],
    ['first and last', [0, 4]],
    ['two runs', [0, 1, 3, 4]],
    ['one in the middle', [2]],
  ])('keeps %s, and the other list fields', (_name, kept) => {
    const out = Buffer.concat(encodeNodeList(body, spans, kept, { metadata: { resourceVersion: '7' }, kind: 'NodeList', items })).toString();
    expect(JSON.parse(out)).toEqual({ metadata: { resourceVersion: '7' }, kind: 'NodeList', items: kept.map((i) => items[i]) });
  });

  it('a list with no other fields', () => {
    expect(JSON.parse(Buffer.concat(encodeNodeList(body, spans, [1], { items })).toString())).toEqual({ items: [items[1]] });
  });

  it('returns the request bytes themselves: int64 values beyond 2^53 survive', () => {
    const big = Buffer.from('{"Pod":{},"Nodes":{"items":[{"status":{"images":[{"sizeBytes":9007199254740993}]}}]}}');
    const out = Buffer.concat(encodeNodeList(big, locateItems(big.toString('latin1')) ?? [], [0], { items: [] })).toString();
    expect(out).toContain('9007199254740993');
  });
});
