import { z } from 'zod';
import { CONFIG_PATH_ENV, envSettings, SECRET_SHORTCUTS, type EnvSetting } from './env-layer.js';
import { schemaAt } from './invalid-config-error.js';
import { ConfigSchema } from './schema.js';

/**
 * Documentation generated from the schema: the JSON Schema for editors (`sealflow config
 * schema`) and the settings table of docs/configuration.md (`sealflow config schema --markdown`),
 * so documentation cannot drift from what is validated.
 */

export const CONFIG_SCHEMA_ID = 'https://sealflow.dev/schema/config.json';

/** JSON Schema (draft 2020-12) of what a config file may contain. */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' });
  // A JSON config file may carry "$schema" for editors; the loader ignores it.
  const properties = { $schema: { type: 'string', description: 'JSON Schema URL for editors; ignored by sealflow.' }, ...(schema.properties ?? {}) };
  return { ...schema, properties, $id: CONFIG_SCHEMA_ID, title: 'sealflow configuration' };
}

function defaultOf(setting: EnvSetting): unknown {
  let s = schemaAt(setting.path);
  while (s !== null) {
    const def = s._zod.def as { type: string; defaultValue?: unknown; innerType?: z.core.$ZodType };
    if (def.type === 'default') return def.defaultValue;
    s = def.innerType ?? null;
  }
  return undefined;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function showDefault(v: unknown): string {
  if (v === undefined) return '';
  const s = JSON.stringify(v);
  return s.length > 60 ? '(see description)' : `\`${s}\``;
}

/** The settings table of docs/configuration.md: one row per setting, with its environment variable and default. */
export function settingsMarkdown(): string {
  const rows = ['| setting | environment variable | default | description |', '| --- | --- | --- | --- |'];
  for (const s of envSettings()) {
    rows.push(`| \`${s.path.join('.')}\` | \`${s.env}\` | ${cell(showDefault(defaultOf(s)))} | ${cell(s.description)} |`);
  }
  rows.push('', 'Secret shortcuts (set at most one of each row; they override the setting):', '', '| setting | value | file path | command |', '| --- | --- | --- | --- |');
  for (const sc of SECRET_SHORTCUTS) rows.push(`| \`${sc.path.join('.')}\` | \`${sc.env}\` | \`${sc.env}_FILE\` | \`${sc.env}_COMMAND\` |`);
  rows.push('', `\`${CONFIG_PATH_ENV}\` names the config file when \`--config\` is not given.`);
  return rows.join('\n') + '\n';
}

/** Plain list of environment variables, one per line, for `sealflow config schema --env`. */
export function envList(): string {
  const w = Math.max(...envSettings().map((s) => s.env.length));
  const lines = envSettings().map((s) => `${s.env.padEnd(w)}  ${s.path.join('.')} (${s.kind})`);
  for (const sc of SECRET_SHORTCUTS) {
    lines.push(`${sc.env.padEnd(w)}  ${sc.path.join('.')} (the secret value itself)`);
    lines.push(`${(sc.env + '_FILE').padEnd(w)}  ${sc.path.join('.')} (path of a file holding it)`);
    lines.push(`${(sc.env + '_COMMAND').padEnd(w)}  ${sc.path.join('.')} (command printing it: JSON argv array or words)`);
  }
  lines.push(`${CONFIG_PATH_ENV.padEnd(w)}  config file path (when --config is not given)`);
  return lines.join('\n') + '\n';
}
