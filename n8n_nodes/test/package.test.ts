/**
 * What `npm publish` would ship: `npm pack --dry-run --json` on the built package (run
 * `npm run build` first, as `npm run check` and CI do). The tarball holds the built nodes and
 * credential, their icons, README, LICENSE and package.json, and nothing else: no TypeScript
 * build info, sources, tests, end-to-end scripts or examples.
 */
// eslint-disable-next-line @n8n/community-nodes/no-restricted-imports -- a test run by the developer and CI, never loaded by n8n
import { execFileSync } from 'node:child_process';
// eslint-disable-next-line @n8n/community-nodes/no-restricted-imports -- a test run by the developer and CI, never loaded by n8n
import { existsSync } from 'node:fs';
// eslint-disable-next-line @n8n/community-nodes/no-restricted-imports -- a test run by the developer and CI, never loaded by n8n
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));

interface Packed {
	files: Array<{ path: string }>;
	size: number;
}

function packed(): Packed {
	// eslint-disable-next-line @n8n/community-nodes/no-dangerous-functions -- runs npm pack --dry-run on this package
	const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
		cwd: PACKAGE,
		encoding: 'utf8',
		stdio: ['ignore', 'pipe', 'ignore'],
	});
	return (JSON.parse(out) as Packed[])[0];
}

describe('the npm tarball', () => {
	it('ships the built nodes, credential, icons, README and LICENSE, and nothing else', () => {
		expect(
			existsSync(`${PACKAGE}dist/nodes/TierRouter/TierRouter.node.js`),
			'run npm run build first',
		).toBe(true);
		const files = packed().files.map((file) => file.path);
		for (const needed of [
			'LICENSE',
			'README.md',
			'package.json',
			'dist/credentials/TierRouterApi.credentials.js',
			'dist/nodes/TierRouter/TierRouter.node.js',
			'dist/nodes/TierRouter/TierRouter.node.json',
			'dist/nodes/TierRouterChatModel/TierRouterChatModel.node.js',
			'dist/icons/tier-router.svg',
			'dist/icons/tier-router.dark.svg',
		]) {
			expect(files).toContain(needed);
		}
		const unexpected = files.filter(
			(path) =>
				!['LICENSE', 'README.md', 'package.json'].includes(path) &&
				!/^dist\/.+\.(js|js\.map|d\.ts|json|svg)$/.test(path),
		);
		expect(unexpected).toEqual([]);
		expect(
			files.filter((path) => /tsbuildinfo|^test\/|^e2e\/|^examples\/|\.test\./.test(path)),
		).toEqual([]);
		expect(files.filter((path) => path.endsWith('.ts') && !path.endsWith('.d.ts'))).toEqual([]);
	});

	it('stays small (the TypeScript build info alone was 500 kB)', () => {
		expect(packed().size).toBeLessThan(60_000);
	});
});
