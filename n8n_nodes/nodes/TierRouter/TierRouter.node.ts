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
import { checkItems, onQualityOutputs } from './checkQuality';
import { type Operation, outputNamesFor, outputsExpression, properties } from './description';
import { onRecordOutputs, recordItems } from './recordOutcome';
import { onTierOutputs, routeItems } from './route';

/**
 * Whether n8n runs the node as an AI Agent's tool. n8n gives a `usableAsTool` node the type
 * `<package>.<name>Tool` there (`n8n-nodes-tier-router.tierRouterTool`), and answers the agent
 * with the items of the FIRST output only; `isToolExecution()` is true only when the tool runs
 * inside the agent (not when n8n's engine runs it as a node for an AI Agent v3).
 */
export function runsAsTool(ctx: IExecuteFunctions): boolean {
	return ctx.isToolExecution?.() === true || ctx.getNode().type.endsWith('Tool');
}

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
			'={{ $parameter["operation"] === "checkQuality" ? "check quality" : $parameter["operation"] === "recordOutcome" ? "record outcome" : "route by tier" }}',
		description:
			'Route each item to the output of the LLM tier tier-router chooses, check an answer and escalate, or record an outcome',
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
		// As a tool, every item goes back to the agent on one output, carrying `routing`,
		// `quality` or `outcome`: the decision is in the item, not in which output it leaves on.
		if (operation === 'recordOutcome') {
			const recorded = await recordItems.call(this);
			return runsAsTool(this) ? [recorded.map((entry) => entry.item)] : onRecordOutputs(recorded);
		}
		if (operation === 'checkQuality') {
			const checked = await checkItems.call(this);
			return runsAsTool(this) ? [checked.map((entry) => entry.item)] : onQualityOutputs(checked);
		}
		const routed = await routeItems.call(this);
		if (runsAsTool(this)) return [routed.map((entry) => entry.item)];
		const tiers = outputNamesFor(operation, this.getNodeParameter('tiers', 0, []));
		return onTierOutputs(this, routed, tiers);
	}
}
