return BnParity.Cli.CliApp.Run(args, Console.Out);
