import type { IDataObject, IHttpRequestOptions } from 'n8n-workflow';
import { NodeApiError } from 'n8n-workflow';
import { describe, expect, it } from 'vitest';

import { TierRouter } from '../nodes/TierRouter/TierRouter.node';
import { connectionRefused, executeContext, httpFailure } from './context';

/** tier-router's /v1/quality, as far as these tests need: hedges escalate one tier up. */
function quality(request: IHttpRequestOptions) {
	const body = request.body as IDataObject;
	const escalate = String(body.response).includes('not sure');
	return {
		escalate,
		reasons: escalate ? ['uncertain'] : [],
		score: escalate ? 0.5 : 1,
		tier: body.tier ?? 'simple',
		category: 'classification',
		next_tier: escalate ? 'medium' : null,
		next_endpoint: escalate ? { name: 'medium-model', model: 'medium:13b' } : null,
	};
}

const parameters = {
	operation: 'checkQuality',
	prompt: (i: number) => `question ${i}`,
	response: (i: number) => (i === 1 ? "I'm not sure." : 'A full answer.'),
	tier: 'simple',
	qualityOptions: { finishReason: 'stop', maxTokens: 200, timeout: 500 },
};

describe('Tier Router: checkQuality', () => {
	it('sends good answers to pass and weak ones to escalate, with the next tier and endpoint', async () => {
		const { ctx, requests } = executeContext({
			items: [{ id: 'a' }, { id: 'b' }, { id: 'c' }],
			parameters,
			handler: quality,
		});
		const [pass, escalate] = await new TierRouter().execute.call(ctx);
		expect(pass.map((item) => item.json.id)).toEqual(['a', 'c']);
		expect(escalate.map((item) => item.json.id)).toEqual(['b']);
		expect(escalate[0].pairedItem).toEqual({ item: 1 });
		expect((escalate[0].json.quality as IDataObject).next_tier).toBe('medium');
		expect((escalate[0].json.quality as IDataObject).next_endpoint).toEqual({
			name: 'medium-model',
			model: 'medium:13b',
		});
		expect(requests[1].url).toBe('http://127.0.0.1:8700/v1/quality');
		expect(requests[1].body).toEqual({
			prompt: 'question 1',
			response: "I'm not sure.",
			tier: 'simple',
			finish_reason: 'stop',
			max_tokens: 200,
		});
		expect(requests[1].timeout).toBe(500);
	});

	it('fails with the item index when tier-router is down, or marks the item under Continue On Fail', async () => {
		const down = () => {
			throw connectionRefused();
		};
		const failing = executeContext({ items: [{ id: 'a' }], parameters, handler: down });
		const error = await new TierRouter().execute.call(failing.ctx).catch((e: unknown) => e);
		expect(error).toBeInstanceOf(NodeApiError);
		expect((error as NodeApiError).context.itemIndex).toBe(0);

		const tolerant = executeContext({
			items: [{ id: 'a' }],
			parameters,
			handler: down,
			continueOnFail: true,
		});
		const [pass, escalate, failed] = await new TierRouter().execute.call(tolerant.ctx);
		expect(pass).toEqual([]);
		expect(escalate).toEqual([]);
		expect(failed[0].json.error).toBe('tier-router is not reachable (ECONNREFUSED)');
	});

	it('with Continue On Fail, an answer whose check failed goes to failed, never to pass or escalate', async () => {
		const { ctx } = executeContext({
			items: [{ id: 'a' }, { id: 'b' }, { id: 'c' }],
			parameters,
			handler: (request) => {
				if ((request.body as IDataObject).prompt === 'question 2') {
					throw httpFailure(503, { detail: 'quality check unavailable' });
				}
				return quality(request);
			},
			continueOnFail: true,
		});
		const [pass, escalate, failed] = await new TierRouter().execute.call(ctx);
		expect(pass.map((item) => item.json.id)).toEqual(['a']);
		expect(escalate.map((item) => [item.json.id, item.json.error])).toEqual([['b', undefined]]);
		expect(failed.map((item) => [item.json.id, item.json.error])).toEqual([
			['c', 'tier-router answered HTTP 503: quality check unavailable'],
		]);
		expect(failed[0].json.quality).toBeUndefined();
		expect(failed[0].error).toBeInstanceOf(NodeApiError);
		expect(failed[0].pairedItem).toEqual({ item: 2 });
	});

	it('as an AI Agent tool, returns every checked item on one output with its quality', async () => {
		const { ctx } = executeContext({
			items: [{ id: 'a' }, { id: 'b' }],
			parameters,
			handler: quality,
			nodeType: 'n8n-nodes-tier-router.tierRouterTool',
		});
		const result = await new TierRouter().execute.call(ctx);
		expect(result).toHaveLength(1);
		expect(
			result[0].map((item) => [item.json.id, (item.json.quality as IDataObject).escalate]),
		).toEqual([
			['a', false],
			['b', true],
		]);
	});
});
