/**
 * Makes the route tier-router took visible in the chat-model node's output in n8n.
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
