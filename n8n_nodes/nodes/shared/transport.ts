/**
 * The one way these nodes talk to tier-router: an authenticated JSON request through n8n's
 * `httpRequestWithAuthentication` (so the credential adds the API key), and one place that turns
 * a failure into a `NodeApiError` that says what went wrong and where.
 */
import type {
	IDataObject,
	IExecuteFunctions,
	IHttpRequestMethods,
	IHttpRequestOptions,
	ILoadOptionsFunctions,
	ISupplyDataFunctions,
	JsonObject,
} from 'n8n-workflow';
import { NodeApiError, NodeOperationError } from 'n8n-workflow';

export const CREDENTIAL_NAME = 'tierRouterApi';

/** Milliseconds to wait for tier-router before giving up, unless the node sets its own. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * A trailing `/v1` and trailing slashes, which users copy from OpenAI-style base URLs: the nodes
 * add `/v1/...` themselves. The credential's test request uses the same pattern.
 */
export const BASE_URL_SUFFIX = /(?:\/+v1)?\/*$/;

/** The service's root URL from what the user typed: `http://host:8700/v1/` -> `http://host:8700`. */
export function serviceUrl(baseUrl: string): string {
	return baseUrl.trim().replace(BASE_URL_SUFFIX, '');
}

type Context = IExecuteFunctions | ILoadOptionsFunctions | ISupplyDataFunctions;

export interface RequestOptions {
	method: IHttpRequestMethods;
	path: string;
	body?: IDataObject;
	headers?: Record<string, string>;
	timeoutMs?: number;
	/** Which input item the request is for, so that the error names it. */
	itemIndex?: number;
}

/** The service's root URL from the credential, without a trailing slash or `/v1`. */
export async function baseUrlOf(ctx: Context): Promise<string> {
	const credentials = await ctx.getCredentials(CREDENTIAL_NAME);
	return serviceUrl(String(credentials.baseUrl ?? ''));
}

export async function tierRouterRequest<T>(ctx: Context, options: RequestOptions): Promise<T> {
	const baseUrl = await baseUrlOf(ctx);
	const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
	const request: IHttpRequestOptions = {
		method: options.method,
		url: `${baseUrl}${options.path}`,
		json: true,
		timeout: timeoutMs,
	};
	if (options.body !== undefined) request.body = options.body;
	if (options.headers !== undefined) request.headers = options.headers;
	try {
		return (await ctx.helpers.httpRequestWithAuthentication.call(
			ctx,
			CREDENTIAL_NAME,
			request,
		)) as T;
	} catch (error) {
		throw apiError(ctx, error, `${options.method} ${baseUrl}${options.path}`, {
			itemIndex: options.itemIndex,
			timeoutMs,
		});
	}
}

interface HttpFailure {
	message?: string;
	code?: string;
	httpCode?: string | null;
	cause?: HttpFailure;
	response?: { status?: number; data?: unknown; body?: unknown };
	context?: { data?: unknown };
}

/** tier-router's own explanation: FastAPI's `detail` or OpenAI's `error.message`. */
export function detailOf(payload: unknown): string | undefined {
	if (payload === null || payload === undefined) return undefined;
	if (typeof payload === 'string') return payload;
	const body = payload as { detail?: unknown; error?: unknown };
	if (typeof body.detail === 'string') return body.detail;
	if (Array.isArray(body.detail)) {
		return body.detail
			.map((entry: { loc?: unknown[]; msg?: string }) =>
				[Array.isArray(entry.loc) ? entry.loc.join('.') : '', entry.msg ?? '']
					.filter((part) => part !== '')
					.join(': '),
			)
			.join('; ');
	}
	if (typeof body.error === 'string') return body.error;
	if (body.error && typeof body.error === 'object') {
		const message = (body.error as { message?: unknown }).message;
		if (typeof message === 'string') return message;
	}
	return undefined;
}

/**
 * What went wrong with a request: its HTTP status, or the network error code, and tier-router's
 * explanation. n8n's request helper may already have wrapped the failure in a NodeApiError (its
 * `httpCode` is the status or the network code, its `cause` the original failure).
 */
export function failureOf(error: unknown): {
	status?: number;
	network?: string;
	detail?: string;
	text: string;
} {
	const failure = error as HttpFailure;
	const inner = failure.cause && error instanceof NodeApiError ? failure.cause : failure;
	const code = String(failure.httpCode ?? '');
	const numeric = /^\d{3}$/.test(code) ? Number(code) : undefined;
	const status = inner.response?.status ?? failure.response?.status ?? numeric;
	const network =
		inner.code ?? inner.cause?.code ?? (code && numeric === undefined ? code : undefined);
	const detail = detailOf(inner.response?.data ?? inner.response?.body ?? failure.context?.data);
	return { status, network, detail, text: inner.message ?? failure.message ?? String(error) };
}

/** Network codes and texts of a request that ran out of time (axios, Node.js sockets). */
const TIMEOUT_CODES = new Set(['ECONNABORTED', 'ETIMEDOUT', 'ESOCKETTIMEDOUT']);

function isTimeout(network: string | undefined, text: string): boolean {
	return (network !== undefined && TIMEOUT_CODES.has(network)) || /\btime(d )?out\b/i.test(text);
}

export function apiError(
	ctx: Context,
	error: unknown,
	target: string,
	{ itemIndex, timeoutMs }: { itemIndex?: number; timeoutMs?: number } = {},
): NodeApiError {
	const { status, network, detail, text } = failureOf(error);
	let message: string;
	let description: string;
	if (status === undefined && timeoutMs !== undefined && isTimeout(network, text)) {
		message = `tier-router did not answer within ${timeoutMs} ms`;
		description = `${target} got no answer within ${timeoutMs} ms (${text}). Raise the node's Timeout option, or check why tier-router (or the model behind it) is slow.`;
	} else if (status === 401 || status === 403) {
		message = `tier-router refused the API key (HTTP ${status})`;
		description = `${target}: ${detail ?? 'unauthorized'}. Check the API key in the Tier Router API credential.`;
	} else if (status !== undefined) {
		message = `tier-router answered HTTP ${status}${detail ? `: ${detail}` : ''}`;
		description = `${target} failed with HTTP ${status}.`;
	} else {
		message = `tier-router is not reachable${network ? ` (${network})` : ''}`;
		description = `${target} failed: ${text}. Is tier-router running at the credential's Base URL?`;
	}
	const nodeError =
		error instanceof NodeApiError
			? error
			: new NodeApiError(ctx.getNode(), error as JsonObject, {
					message,
					description,
					...(status !== undefined ? { httpCode: String(status) } : {}),
				});
	// NodeApiError puts a generic text on connection errors; keep the one that names tier-router.
	nodeError.message = message;
	nodeError.description = description;
	if (itemIndex !== undefined) nodeError.context.itemIndex = itemIndex;
	return nodeError;
}

/** Any failure as the node error n8n expects, keeping one that already is one. */
export function nodeErrorOf(
	ctx: Context,
	error: unknown,
	itemIndex: number,
): NodeApiError | NodeOperationError {
	if (error instanceof NodeApiError || error instanceof NodeOperationError) return error;
	return new NodeOperationError(ctx.getNode(), error as Error, { itemIndex });
}
