import type {
	IExecuteFunctions,
	ILoadOptionsFunctions,
	INodeExecutionData,
	INodePropertyOptions,
	INodeType,
	INodeTypeDescription,
} from 'n8n-workflow';
import { NodeConnectionTypes } from 'n8n-workflow';

import { CREDENTIAL_NAME, tierRouterRequest } from '../shared/transport';
import { checkQuality } from './checkQuality';
import { type Operation, outputNamesFor, outputsExpression, properties } from './description';
import { route } from './route';

interface Portfolio {
	tiers?: Array<{ name: string; endpoints?: Array<{ name: string; model?: string }> }>;
}

export class TierRouter implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Tier Router',
		name: 'tierRouter',
		icon: {
			light: 'file:../../icons/tier-router.svg',
			dark: 'file:../../icons/tier-router.dark.svg',
		},
		group: ['transform'],
		version: [1],
		subtitle:
			'={{ $parameter["operation"] === "checkQuality" ? "check quality" : "route by tier" }}',
		description:
			'Route each item to the output of the LLM tier tier-router chooses, or check an answer and escalate',
		defaults: { name: 'Tier Router' },
		usableAsTool: true,
		inputs: [NodeConnectionTypes.Main],
		outputs: outputsExpression,
		credentials: [{ name: CREDENTIAL_NAME, required: true }],
		properties,
	};

	methods = {
		loadOptions: {
			/** The portfolio's tiers, cheapest first, from GET /v1/portfolio. */
			async getTiers(this: ILoadOptionsFunctions): Promise<INodePropertyOptions[]> {
				const portfolio = await tierRouterRequest<Portfolio>(this, {
					method: 'GET',
					path: '/v1/portfolio',
				});
				return (portfolio.tiers ?? []).map((tier) => ({
					name: tier.name,
					value: tier.name,
					description: (tier.endpoints ?? []).map((e) => e.model ?? e.name).join(', '),
				}));
			},
		},
	};

	async execute(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
		const operation = this.getNodeParameter('operation', 0) as Operation;
		if (operation === 'checkQuality') return await checkQuality.call(this);
		const tiers = outputNamesFor(operation, this.getNodeParameter('tiers', 0, []));
		return await route.call(this, tiers);
	}
}
