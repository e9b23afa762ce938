import { describe, expect, it } from 'vitest';

import { TierRouterApi } from '../credentials/TierRouterApi.credentials';
import { outputNamesFor, outputsExpression } from '../nodes/TierRouter/description';
import { TierRouter } from '../nodes/TierRouter/TierRouter.node';
import { TierRouterChatModel } from '../nodes/TierRouterChatModel/TierRouterChatModel.node';
import { serviceUrl } from '../nodes/shared/transport';

/** Evaluate the outputs expression as the editor would, with the node's parameters. */
function outputsOf(parameters: Record<string, unknown>) {
	const body = outputsExpression.slice('={{'.length, -'}}'.length);
	// eslint-disable-next-line @n8n/community-nodes/no-dangerous-functions -- the node's own expression, evaluated as the editor does
	return new Function('$parameter', `return (${body});`)(parameters) as Array<{
		type: string;
		displayName: string;
	}>;
}

describe('node descriptions', () => {
	it('gives the route operation one main output per tier, in order, then failed', () => {
		expect(
			outputsOf({ operation: 'route', tiers: ['simple', 'medium', 'complex', 'expert'] }),
		).toEqual(
			['simple', 'medium', 'complex', 'expert', 'failed'].map((name) => ({
				type: 'main',
				displayName: name,
			})),
		);
		expect(outputsOf({ operation: 'route' }).map((o) => o.displayName)).toEqual(
			outputNamesFor('route', undefined),
		);
	});

	it('gives checkQuality the outputs pass, escalate and failed', () => {
		expect(
			outputsOf({ operation: 'checkQuality', tiers: ['a'] }).map((o) => o.displayName),
		).toEqual(['pass', 'escalate', 'failed']);
		expect(outputNamesFor('checkQuality', ['a'])).toEqual(['pass', 'escalate', 'failed']);
	});

	it('gives recordOutcome the outputs recorded and failed, in the editor and at run time', () => {
		expect(
			outputsOf({ operation: 'recordOutcome', tiers: ['a'] }).map((o) => o.displayName),
		).toEqual(['recorded', 'failed']);
		expect(outputNamesFor('recordOutcome', ['a'])).toEqual(['recorded', 'failed']);
	});

	it('makes the Tier Router node usable as a tool and the chat model an ai_languageModel', () => {
		expect(new TierRouter().description.usableAsTool).toBe(true);
		expect(new TierRouterChatModel().description.outputs).toEqual(['ai_languageModel']);
	});

	it('tests the credential against an authenticated endpoint with a Bearer key', () => {
		const credential = new TierRouterApi();
		expect(credential.test.request.url).toBe('/v1/portfolio');
		expect(credential.authenticate).toEqual({
			type: 'generic',
			properties: { headers: { Authorization: '=Bearer {{$credentials.apiKey}}' } },
		});
	});

	it('drops a trailing /v1 and slashes from the Base URL, in the nodes and in the credential test', () => {
		const typed = [
			'http://127.0.0.1:8700',
			'http://127.0.0.1:8700/',
			'http://127.0.0.1:8700/v1',
			'http://127.0.0.1:8700/v1/',
			' http://127.0.0.1:8700//v1// ',
		];
		for (const baseUrl of typed) expect(serviceUrl(baseUrl)).toBe('http://127.0.0.1:8700');
		// A path of the user's own (a reverse proxy) stays; only the API version goes.
		expect(serviceUrl('https://gw.example/tier-router/v1')).toBe('https://gw.example/tier-router');
		expect(serviceUrl('https://gw.example/v1x')).toBe('https://gw.example/v1x');

		const expression = String(new TierRouterApi().test.request.baseURL);
		const body = expression.slice('={{'.length, -'}}'.length);
		for (const baseUrl of typed) {
			// eslint-disable-next-line @n8n/community-nodes/no-dangerous-functions -- the credential's own expression, evaluated as n8n does
			const evaluate = new Function('$credentials', `return (${body});`);
			expect(evaluate({ baseUrl })).toBe('http://127.0.0.1:8700');
		}
	});
});
