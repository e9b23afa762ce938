import type { IHttpRequestOptions } from 'n8n-workflow';
import { NodeApiError, NodeOperationError } from 'n8n-workflow';
import { describe, expect, it } from 'vitest';

import { TierRouter } from '../nodes/TierRouter/TierRouter.node';
import { connectionRefused, decision, executeContext, httpFailure, NODE } from './context';

const TIERS = ['simple', 'medium', 'complex'];

type BatchBody = {
	items: Array<{ prompt: string; agent?: string; min_tier?: string; max_tier?: string }>;
};

/** tier-router's batch endpoint: the prompt "tier:<name>" is routed to <name>. */
function batch(request: IHttpRequestOptions) {
	const body = request.body as BatchBody;
	return {
		results: body.items.map((item) =>
			item.prompt.startsWith('bad')
				? { error: { status: 422, detail: [{ loc: ['body', 'prompt'], msg: 'too odd' }] } }
				: decision(item.prompt.replace('tier:', '')),
		),
	};
}

async function run(setup: Parameters<typeof executeContext>[0]) {
	const { ctx, requests } = executeContext(setup);
	const result = await new TierRouter().execute.call(ctx);
	return { result, requests };
}

const base = { operation: 'route', tiers: TIERS, prompt: (i: number) => PROMPTS[i] };
let PROMPTS: string[] = [];

describe('Tier Router: route', () => {
	it('puts each item on its tier output, in portfolio order, with routing and pairedItem', async () => {
		PROMPTS = ['tier:complex', 'tier:simple', 'tier:medium', 'tier:simple'];
		const { result, requests } = await run({
			items: PROMPTS.map((prompt, i) => ({ prompt, n: i })),
			parameters: base,
			handler: batch,
		});
		expect(result.map((output) => output.map((item) => item.json.n))).toEqual([
			[1, 3],
			[2],
			[0],
			[],
		]);
		expect(result[0][0].pairedItem).toEqual({ item: 1 });
		expect(result[2][0].json.routing).toEqual({
			tier: 'complex',
			confidence: 0.9,
			category: 'classification',
			endpoint: {
				name: 'complex-model',
				api: 'ollama',
				base_url: 'http://127.0.0.1:11434',
				model: 'complex:1b',
			},
			fallback: [],
			reason: 'classifier',
			adjustments: [],
			reason_detail: 'classifier',
			request_id: 'req-complex',
		});
		expect(result[2][0].json.prompt).toBe('tier:complex');
		expect(requests).toHaveLength(1);
		expect(requests[0].method).toBe('POST');
		expect(requests[0].url).toBe('http://127.0.0.1:8700/v1/route/batch');
		expect((requests[0].body as BatchBody).items.map((i) => i.prompt)).toEqual(PROMPTS);
	});

	it('passes on what moved the decision (adjustments) and the decision in a sentence', async () => {
		PROMPTS = ['tier:medium'];
		const { result } = await run({
			items: [{ prompt: PROMPTS[0] }],
			parameters: base,
			handler: () => ({
				results: [
					decision('medium', {
						adjustments: ['min_tier'],
						reason_detail: 'classifier chose simple (0.91); raised to min_tier medium',
					}),
				],
			}),
		});
		expect(result[1][0].json.routing).toMatchObject({
			tier: 'medium',
			adjustments: ['min_tier'],
			reason_detail: 'classifier chose simple (0.91); raised to min_tier medium',
		});
	});

	it('sends the batch endpoint chunks of Batch Size items', async () => {
		PROMPTS = ['tier:simple', 'tier:medium', 'tier:simple', 'tier:complex', 'tier:medium'];
		const { result, requests } = await run({
			items: PROMPTS.map((prompt) => ({ prompt })),
			parameters: { ...base, batchSize: 2 },
			handler: batch,
		});
		expect(requests.map((r) => (r.body as BatchBody).items.length)).toEqual([2, 2, 1]);
		expect(result.map((output) => output.length)).toEqual([2, 2, 1, 0]);
	});

	it('sends agent and tier bounds per item, and the timeout', async () => {
		PROMPTS = ['tier:simple', 'tier:complex'];
		const { requests } = await run({
			items: [
				{ prompt: PROMPTS[0], agent: 'support' },
				{ prompt: PROMPTS[1], agent: '' },
			],
			parameters: {
				...base,
				options: (i: number) => ({
					agent: i === 0 ? 'support' : '',
					minTier: 'simple',
					maxTier: 'complex',
					timeout: 1234,
				}),
			},
			handler: batch,
		});
		expect((requests[0].body as BatchBody).items).toEqual([
			{ prompt: 'tier:simple', agent: 'support', min_tier: 'simple', max_tier: 'complex' },
			{ prompt: 'tier:complex', min_tier: 'simple', max_tier: 'complex' },
		]);
		expect(requests[0].timeout).toBe(1234);
	});

	it('fails on an item the batch endpoint rejects, naming the item', async () => {
		PROMPTS = ['tier:simple', 'bad one'];
		const error = await run({
			items: PROMPTS.map((prompt) => ({ prompt })),
			parameters: base,
			handler: batch,
		}).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(NodeOperationError);
		expect((error as NodeOperationError).message).toBe(
			'tier-router rejected item 2: body.prompt: too odd',
		);
		expect((error as NodeOperationError).context.itemIndex).toBe(1);
	});

	it('with Continue On Fail, a rejected item leaves with its error on the failed output, never on a tier', async () => {
		PROMPTS = ['bad one', 'tier:medium'];
		const { result } = await run({
			items: PROMPTS.map((prompt) => ({ prompt })),
			parameters: base,
			handler: batch,
			continueOnFail: true,
		});
		expect(result.map((output) => output.length)).toEqual([0, 1, 0, 1]);
		const [failed] = result[3];
		expect(failed.json.error).toBe('tier-router rejected item 1: body.prompt: too odd');
		expect(failed.json.routing).toBeUndefined();
		expect(failed.error).toBeInstanceOf(NodeOperationError);
		expect(failed.pairedItem).toEqual({ item: 0 });
		expect(result[1].map((item) => item.json.prompt)).toEqual(['tier:medium']);
	});

	it('with Continue On Fail, an empty prompt is a failed item: never sent, never on the strongest tier, whatever the order of Tiers', async () => {
		PROMPTS = ['tier:complex', '', 'tier:simple'];
		const { result, requests } = await run({
			items: PROMPTS.map((prompt, n) => ({ prompt, n })),
			// Tiers not cheapest first: the failed item must not follow the field's order either.
			parameters: { ...base, tiers: ['complex', 'simple', 'medium'] },
			handler: batch,
			continueOnFail: true,
		});
		expect((requests[0].body as BatchBody).items.map((i) => i.prompt)).toEqual([
			'tier:complex',
			'tier:simple',
		]);
		expect(result.map((output) => output.map((item) => item.json.n))).toEqual([[0], [2], [], [1]]);
		expect(result[3][0].json.error).toBe('Item 2 has no prompt');
		expect(result[3][0].pairedItem).toEqual({ item: 1 });
	});

	it('refuses an empty prompt before sending anything', async () => {
		PROMPTS = ['tier:simple', '  '];
		const { ctx, requests } = executeContext({
			items: PROMPTS.map((prompt) => ({ prompt })),
			parameters: base,
			handler: batch,
		});
		const error = await new TierRouter().execute.call(ctx).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(NodeOperationError);
		expect((error as NodeOperationError).message).toBe('Item 2 has no prompt');
		expect((error as NodeOperationError).context.itemIndex).toBe(1);
		expect(requests).toHaveLength(0);
	});

	it('names a tier that has no output', async () => {
		PROMPTS = ['tier:expert'];
		const error = await run({
			items: [{ prompt: PROMPTS[0] }],
			parameters: base,
			handler: batch,
		}).catch((e: unknown) => e);
		expect((error as Error).message).toBe(
			"tier-router chose tier 'expert', which has no output here",
		);
	});

	it('says tier-router is not reachable when the connection is refused', async () => {
		PROMPTS = ['tier:simple'];
		const error = await run({
			items: [{ prompt: PROMPTS[0] }],
			parameters: base,
			handler: () => {
				throw connectionRefused();
			},
		}).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(NodeApiError);
		expect((error as NodeApiError).message).toBe('tier-router is not reachable (ECONNREFUSED)');
		expect((error as NodeApiError).description).toContain(
			'POST http://127.0.0.1:8700/v1/route/batch',
		);
		expect((error as NodeApiError).context.itemIndex).toBe(0);
	});

	it('says the API key was refused on a 401', async () => {
		PROMPTS = ['tier:simple'];
		const error = await run({
			items: [{ prompt: PROMPTS[0] }],
			parameters: base,
			handler: () => {
				throw httpFailure(401, { detail: 'invalid API key' });
			},
		}).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(NodeApiError);
		expect((error as NodeApiError).message).toBe('tier-router refused the API key (HTTP 401)');
		expect((error as NodeApiError).description).toContain('invalid API key');
	});

	it('with Continue On Fail, a failed batch request marks each of its items', async () => {
		PROMPTS = ['tier:simple', 'tier:medium', 'tier:complex'];
		let calls = 0;
		const { result } = await run({
			items: PROMPTS.map((prompt) => ({ prompt })),
			parameters: { ...base, batchSize: 2 },
			handler: (request) => {
				calls += 1;
				if (calls === 1) throw httpFailure(503, { detail: 'busy' });
				return batch(request);
			},
			continueOnFail: true,
		});
		expect(result.map((output) => output.length)).toEqual([0, 0, 1, 2]);
		expect(result[3].map((item) => [item.json.prompt, item.json.error])).toEqual([
			['tier:simple', 'tier-router answered HTTP 503: busy'],
			['tier:medium', 'tier-router answered HTTP 503: busy'],
		]);
		expect(result[2][0].json.routing).toMatchObject({ tier: 'complex' });
	});

	it('with Continue On Fail, a tier without an output goes to the failed output with its error', async () => {
		PROMPTS = ['tier:expert', 'tier:simple'];
		const { result } = await run({
			items: PROMPTS.map((prompt) => ({ prompt })),
			parameters: base,
			handler: batch,
			continueOnFail: true,
		});
		expect(result[0].map((item) => item.json.prompt)).toEqual(['tier:simple']);
		expect(result[2]).toEqual([]);
		expect(result[3].map((item) => item.json.error)).toEqual([
			"tier-router chose tier 'expert', which has no output here",
		]);
	});

	it('says tier-router did not answer in time, with the node’s timeout, when the request times out', async () => {
		PROMPTS = ['tier:simple'];
		const error = await run({
			items: [{ prompt: PROMPTS[0] }],
			parameters: { ...base, options: { timeout: 750 } },
			handler: () => {
				throw Object.assign(new Error('timeout of 750ms exceeded'), { code: 'ECONNABORTED' });
			},
		}).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(NodeApiError);
		expect((error as NodeApiError).message).toBe('tier-router did not answer within 750 ms');
	});
});

describe('Tier Router: route as an AI Agent tool', () => {
	const TOOL = 'n8n-nodes-tier-router.tierRouterTool';

	it('returns every item on ONE output, in input order, with its decision (n8n gives the agent only the first output)', async () => {
		PROMPTS = ['tier:complex', 'tier:medium', 'tier:simple'];
		const { result } = await run({
			items: PROMPTS.map((prompt, n) => ({ prompt, n })),
			parameters: base,
			handler: batch,
			nodeType: TOOL,
		});
		expect(result).toHaveLength(1);
		expect(
			result[0].map((item) => [item.json.n, (item.json.routing as { tier: string }).tier]),
		).toEqual([
			[0, 'complex'],
			[1, 'medium'],
			[2, 'simple'],
		]);
		expect(result[0].map((item) => item.pairedItem)).toEqual([
			{ item: 0 },
			{ item: 1 },
			{ item: 2 },
		]);
	});

	it('answers a tier the node has no output for, since a tool has no tier outputs', async () => {
		PROMPTS = ['tier:expert'];
		const { result } = await run({
			items: [{ prompt: PROMPTS[0] }],
			parameters: base,
			handler: batch,
			nodeType: TOOL,
		});
		expect(result).toEqual([
			[
				expect.objectContaining({
					json: expect.objectContaining({ routing: expect.objectContaining({ tier: 'expert' }) }),
				}),
			],
		]);
	});

	it('puts the items of the regular node type on their tier outputs, as before', async () => {
		PROMPTS = ['tier:complex'];
		const { result } = await run({
			items: [{ prompt: PROMPTS[0] }],
			parameters: base,
			handler: batch,
			nodeType: 'n8n-nodes-tier-router.tierRouter',
		});
		expect(result.map((output) => output.length)).toEqual([0, 0, 1, 0]);
	});
});

describe('Tier Router: failures as n8n reports them', () => {
	it('rewrites the NodeApiError that n8n’s request helper throws, keeping the item index', async () => {
		PROMPTS = ['tier:simple'];
		const { ctx } = executeContext({
			items: [{ prompt: PROMPTS[0] }],
			parameters: base,
			handler: () => {
				throw new NodeApiError(NODE, httpFailure(401, { detail: 'invalid API key' }) as never);
			},
		});
		const error = await new TierRouter().execute.call(ctx).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(NodeApiError);
		expect((error as NodeApiError).message).toBe('tier-router refused the API key (HTTP 401)');
		expect((error as NodeApiError).context.itemIndex).toBe(0);

		const down = executeContext({
			items: [{ prompt: PROMPTS[0] }],
			parameters: base,
			handler: () => {
				throw new NodeApiError(NODE, connectionRefused() as never);
			},
		});
		const downError = await new TierRouter().execute.call(down.ctx).catch((e: unknown) => e);
		expect((downError as NodeApiError).message).toBe('tier-router is not reachable (ECONNREFUSED)');

		const slow = executeContext({
			items: [{ prompt: PROMPTS[0] }],
			parameters: base,
			handler: () => {
				const timeout = Object.assign(new Error('timeout of 30000ms exceeded'), {
					code: 'ECONNABORTED',
				});
				throw new NodeApiError(NODE, timeout as never);
			},
		});
		const slowError = await new TierRouter().execute.call(slow.ctx).catch((e: unknown) => e);
		expect((slowError as NodeApiError).message).toBe('tier-router did not answer within 30000 ms');
	});
});
