// Parse and bind KQL files with Microsoft's Kusto language service
// (npm @kusto/language-service-next), against sluice's Kusto tables.
// Usage: node kql_check.js <package dir> <file.kql>...; prints one line per diagnostic, exits 1 on any.
const fs = require('fs');
const vm = require('vm');
const [dir, ...files] = process.argv.slice(2);
global.window = global;
global.self = global;
vm.runInThisContext(fs.readFileSync(dir + '/bridge.min.js', 'utf8'));
vm.runInThisContext(fs.readFileSync(dir + '/Kusto.Language.Bridge.min.js', 'utf8'));
const K = Kusto.Language;
const S = K.Symbols;
const table = (name, cols) =>
  new S.TableSymbol.$ctor4(name, cols.map(([n, t]) => new S.ColumnSymbol(n, S.ScalarTypes.GetSymbol(t))));
// Columns as created by kusto/tables.kql.
const trades = [['event_id', 'string'], ['event_time', 'datetime'], ['symbol', 'string'], ['side', 'string'], ['price', 'real'], ['quantity', 'long'], ['trade_type', 'string']];
const telemetry = [['event_id', 'string'], ['event_time', 'datetime'], ['host', 'string'], ['cpu_pct', 'real'], ['mem_pct', 'real'], ['error_count', 'long'], ['latency_ms', 'real']];
const clickstream = [['event_id', 'string'], ['event_time', 'datetime'], ['user_id', 'string'], ['product_id', 'string'], ['action', 'string'], ['amount', 'real']];
const events = [['scenario', 'string'], ['key', 'string'], ...trades.slice(0, 2), ...trades.slice(2), ...telemetry.slice(2), ...clickstream.slice(2)];
const db = new S.DatabaseSymbol.ctor('sluice', [
  table('trades', trades), table('telemetry', telemetry), table('clickstream', clickstream), table('sluice_events', events),
]);
const globals = K.GlobalState.Default.WithDatabase(db);
let count = 0;
for (const file of files) {
  const text = fs.readFileSync(file, 'utf8');
  const blocks = K.Editor.CodeScript.From$1(text, globals).Blocks;
  for (let i = 0; i < blocks.Count; i++) {
    const diags = blocks.getItem(i).Service.GetDiagnostics();
    for (let j = 0; j < diags.Count; j++) {
      const d = diags.getItem(j);
      const line = text.slice(0, d.Start).split('\n').length;
      console.log(`${file}:${line}: ${d.Severity}: ${d.Message}`);
      count++;
    }
  }
}
process.exit(count ? 1 : 0);
