/**
 * Makes the route tier-router took visible in the chat-model node's output in n8n, and keeps the
 * latest one in the execution's custom data for Record Outcome.
 *
 * n8n records what a language-model sub-node produced (`addOutputData`, called by the SDK's
 * tracing with the answer's text) but keeps only the text of each generation. The model tells a
 * `RoutingLog` which route produced which text; the context handed to the SDK adds that route, as
 * `tier_router`, to the output item that carries the same text.
 */
import type { IDataObject, INodeExecutionData, ISupplyDataFunctions } from 'n8n-workflow';

const KEPT = 64;

export class RoutingLog {
	private readonly entries: Array<{ text: string; routing: IDataObject }> = [];

	record(routing: IDataObject, text: string): void {
		this.entries.push({ text, routing });
		if (this.entries.length > KEPT) this.entries.shift();
	}

	/** The route of the oldest answer with this text, forgotten once taken. */
	take(text: string): IDataObject | undefined {
		const index = this.entries.findIndex((entry) => entry.text === text);
		if (index < 0) return undefined;
		return this.entries.splice(index, 1)[0].routing;
	}
}

interface TracedOutput {
	response?: { generations?: Array<Array<{ text?: unknown }>> };
}

function withRouting(item: INodeExecutionData, log: RoutingLog): INodeExecutionData {
	const text = (item.json as TracedOutput).response?.generations?.[0]?.[0]?.text;
	if (typeof text !== 'string') return item;
	const routing = log.take(text);
	return routing ? { ...item, json: { ...item.json, tier_router: routing } } : item;
}

export function showRoutingInOutput(
	ctx: ISupplyDataFunctions,
	log: RoutingLog,
): ISupplyDataFunctions {
	const addOutputData: ISupplyDataFunctions['addOutputData'] = (type, runIndex, data, ...rest) =>
		ctx.addOutputData(
			type,
			runIndex,
			Array.isArray(data) ? data.map((run) => run.map((item) => withRouting(item, log))) : data,
			...rest,
		);
	return new Proxy(ctx, {
		get(target, property) {
			if (property === 'addOutputData') return addOutputData;
			const value: unknown = Reflect.get(target, property, target);
			// n8n's context classes keep private fields: call their methods on the real object.
			return typeof value === 'function' ? value.bind(target) : value;
		},
	});
}

/**
 * The keys under which the latest answer's route is kept in the execution's custom data. A
 * language-model sub-node has no `main` output, so `$('Tier Router Chat Model')` cannot be read
 * after a chain; the execution's custom data is saved with the execution (it survives a Wait or
 * an approval step). n8n 2.41.1 expressions do not read it back, so the Tier Router node's
 * Record Outcome reads it (`chatModelRoute`) when Answered By Tier is empty, and puts the route
 * on its output. n8n keeps at most 10 keys per execution; these are 5.
 */
export const CUSTOM_DATA_KEYS = {
	request_id: 'tier_router_request_id',
	tier: 'tier_router_tier',
	endpoint: 'tier_router_endpoint',
	escalations: 'tier_router_escalations',
	reason: 'tier_router_reason',
} as const;

/** Puts the route of an answer in the execution's custom data (the latest answer wins). */
export function publishRouting(ctx: ISupplyDataFunctions, routing: IDataObject): void {
	let customData: ISupplyDataFunctions['customData'];
	try {
		customData = ctx.customData;
	} catch {
		return; // no execution data in this context (e.g. a test run of the sub-node alone)
	}
	for (const [field, key] of Object.entries(CUSTOM_DATA_KEYS)) {
		const value = routing[field];
		if (typeof value === 'string' || typeof value === 'number') {
			try {
				customData.set(key, String(value));
			} catch {
				// n8n refuses a value only in manual runs past its limits; the answer still stands
			}
		}
	}
}
