import { PassThrough } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveAdmission } from '../../webhook/admission.js';

// serveAdmission answers the bodies that arrive in one turn of the event loop together, after
// it: decisions back to back, then answers. These fakes stand in for node:http's objects.
function request(): IncomingMessage & PassThrough {
  const req = new PassThrough() as unknown as IncomingMessage & PassThrough;
  Object.assign(req, { method: 'POST', headers: { 'content-type': 'application/json' } });
  return req;
}

interface Answer { status: number; body: string }
function response(log: string[], name: string): ServerResponse & { answer?: Answer } {
  const res = {
    headersSent: false, destroyed: false, answer: undefined as Answer | undefined, status: 0,
    setHeader() { /* unused here */ },
    writeHead(status: number) { this.status = status; this.headersSent = true; return this; },
    end(bytes: Buffer) { this.answer = { status: this.status, body: bytes.toString() }; log.push(`answer ${name}`); },
  };
  return res as unknown as ServerResponse & { answer?: Answer };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Bodies named `names`, all arriving in this turn; their responses, in that order. */
function arriveTogether(names: readonly string[], handle: (body: string) => Answer | Promise<Answer>, log: string[]): (ServerResponse & { answer?: Answer })[] {
  return names.map((name) => {
    const req = request();
    const res = response(log, name);
    serveAdmission(req, res, handle);
    req.end(name);
    return res;
  });
}

/** The turn the bodies are read in, and the one after it, where they are answered. */
const twoTurns = async (): Promise<void> => { await nextTurn(); await nextTurn(); };

describe('serveAdmission: bodies of one turn are decided together, then answered together', () => {
  it('decides every body that arrived before answering any, and answers each its own', async () => {
    const log: string[] = [];
    const handle = (body: string): Answer => { log.push(`decide ${body}`); return { status: 200, body: `{"for":${body}}` }; };
    const responses = arriveTogether(['1', '2', '3'], handle, log);
    await twoTurns();
    expect(log).toEqual(['decide 1', 'decide 2', 'decide 3', 'answer 1', 'answer 2', 'answer 3']);
    expect(responses.map((r) => r.answer)).toEqual([1, 2, 3].map((n) => ({ status: 200, body: `{"for":${n}}` })));
  });

  it('a body that arrives in a later turn is answered in a later batch', async () => {
    const log: string[] = [];
    const handle = (body: string): Answer => { log.push(`decide ${body}`); return { status: 200, body }; };
    arriveTogether(['a'], handle, log);
    await twoTurns();
    arriveTogether(['b'], handle, log);
    await twoTurns();
    expect(log).toEqual(['decide a', 'answer a', 'decide b', 'answer b']);
  });

  it('a handler that throws costs its own request a 500 AdmissionReview, not the others theirs', async () => {
    const log: string[] = [];
    const handle = (body: string): Answer => { if (body === 'bad') throw new Error('boom'); return { status: 200, body }; };
    const [bad, good] = arriveTogether(['bad', 'good'], handle, log);
    await twoTurns();
    expect(good?.answer).toEqual({ status: 200, body: 'good' });
    expect(bad?.answer?.status).toBe(500);
    expect(JSON.parse(bad?.answer?.body ?? '{}')).toMatchObject({ kind: 'AdmissionReview', response: { allowed: false, status: { code: 500, message: 'internal error: boom' } } });
  });

  it('an async handler in the batch answers when it settles', async () => {
    const log: string[] = [];
    let settle: (a: Answer) => void = () => undefined;
    const handle = (body: string): Answer | Promise<Answer> => (body === 'later' ? new Promise<Answer>((resolve) => { settle = resolve; }) : { status: 200, body });
    const [later, now] = arriveTogether(['later', 'now'], handle, log);
    await twoTurns();
    expect(now?.answer).toEqual({ status: 200, body: 'now' });
    expect(later?.answer).toBeUndefined();
    settle({ status: 429, body: 'wait' });
    await nextTurn();
    expect(later?.answer).toEqual({ status: 429, body: 'wait' });
  });
});
