import { UsageError, type CommandGroup } from './command.ts';

/** `castellan serve`: the server, exactly as `npm start` runs it (src/main.ts). */
export const serveCommand: CommandGroup = {
  name: 'serve',
  usage: `  serve
      Starts the server, as npm start does (settings from the environment).`,
  async run(args) {
    if (args.length > 0) throw new UsageError('serve takes no arguments: settings come from the environment');
    await import('../../main.ts');
    return 'serving';
  },
};
