module Rl.Tests.ConfigTests

open System
open System.IO
open Expecto
open FsCheck
open Rl

/// A PPO-like configuration record used to exercise the generic config module.
type TestConfig =
    {
        EnvId: string
        Device: string
        LearningRate: float
        Gamma: float
        NumEnvs: int
        NumSteps: int
        MinibatchSize: int
        TotalTimesteps: int64
        AnnealLr: bool
        Hidden: int list
        TargetKl: float option
        ExpName: string
    }

let defaults =
    {
        EnvId = "CartPole-v1"
        Device = "cpu"
        LearningRate = 2.5e-4
        Gamma = 0.99
        NumEnvs = 4
        NumSteps = 128
        MinibatchSize = 128
        TotalTimesteps = 500_000L
        AnnealLr = true
        Hidden = [ 64; 64 ]
        TargetKl = None
        ExpName = "ppo"
    }

let envIds = [ "CartPole-v1"; "Pendulum-v1"; "MountainCar-v0"; "Acrobot-v1" ]

let fields: Field<TestConfig> list =
    [
        Field.choice "env_id" "Gymnasium environment id." envIds (fun c -> c.EnvId) (fun c v -> { c with EnvId = v })
        Field.choice "device" "Where tensors live." [ "cpu"; "cuda" ] (fun c -> c.Device) (fun c v ->
            { c with Device = v })
        Field.float "learning_rate" "Adam step size." (Allow.gt 0.0) (fun c -> c.LearningRate) (fun c v ->
            { c with LearningRate = v })
        Field.float "gamma" "Discount factor\nper step." (Allow.openClosed 0.0 1.0) (fun c -> c.Gamma) (fun c v ->
            { c with Gamma = v })
        Field.int "num_envs" "Parallel environments." (Allow.ge 1) (fun c -> c.NumEnvs) (fun c v ->
            { c with NumEnvs = v })
        Field.int "num_steps" "Steps per env per rollout." (Allow.ge 1) (fun c -> c.NumSteps) (fun c v ->
            { c with NumSteps = v })
        Field.int "minibatch_size" "Samples per minibatch." (Allow.ge 1) (fun c -> c.MinibatchSize) (fun c v ->
            { c with MinibatchSize = v })
        Field.int64 "total_timesteps" "Environment steps in all." (Allow.ge 1L) (fun c -> c.TotalTimesteps) (fun c v ->
            { c with TotalTimesteps = v })
        Field.bool "anneal_lr" "Linear LR decay to 0." (fun c -> c.AnnealLr) (fun c v -> { c with AnnealLr = v })
        Field.intList "hidden" "Hidden layer sizes." (Allow.ge 1) (fun c -> c.Hidden) (fun c v -> { c with Hidden = v })
        Field.floatOption "target_kl" "Early-stop KL, or null." (Allow.gt 0.0) (fun c -> c.TargetKl) (fun c v ->
            { c with TargetKl = v })
        Field.string "exp_name" "Free-text experiment name." (fun c -> c.ExpName) (fun c v -> { c with ExpName = v })
    ]

let validate (c: TestConfig) =
    Config.check
        (c.MinibatchSize <= c.NumSteps * c.NumEnvs)
        "minibatch_size"
        (string c.MinibatchSize)
        (sprintf "<= num_steps * num_envs = %d" (c.NumSteps * c.NumEnvs))

/// Runs `f`, expects a ConfigError and returns (message, key, value, allowed, problem).
let configError (f: unit -> 'a) =
    try
        f () |> ignore
        failtest "expected a ConfigError"
    with e ->
        match e with
        | ConfigError(_, key, value, allowed, problem) -> e.Message, key, value, allowed, problem
        | _ -> reraise ()

let parse = Config.parse fields defaults

[<Tests>]
let tests =
    testList
        "Config"
        [
            test "vectorization_mode sync is refused with a CUDA device (PPO and DQN), accepted on the CPU" {
                let checks =
                    [
                        "ppo",
                        fun device ->
                            Ppo.PpoConfig.validate
                                { Ppo.PpoConfig.seedDefaults with
                                    Run.Device = device
                                    VectorizationMode = "sync"
                                }
                        "dqn",
                        fun device ->
                            Dqn.DqnConfig.validate
                                { Dqn.DqnConfig.defaults with
                                    Run.Device = device
                                    VectorizationMode = "sync"
                                }
                    ]

                for name, check in checks do
                    let _, key, value, allowed, _ = configError (fun () -> check "cuda:0")
                    Expect.equal (key, value) ("vectorization_mode", "sync") $"{name}: names key and value"
                    Expect.stringContains allowed "vector when device is cuda" $"{name}: says what is allowed"
                    check "cpu"
            }

            test "every shipped config in scripts/configs loads and passes its algorithm's checks" {
                let dir = Path.GetDirectoryName(Rl.Tests.TestPaths.config "x.yaml")
                let files = Directory.GetFiles(dir, "*.yaml") |> Array.sort
                Expect.isGreaterThanOrEqual files.Length 8 "the shipped configs"

                for f in files do
                    match Path.GetFileName f with
                    | n when n.StartsWith "ppo-" ->
                        Config.load Ppo.PpoConfig.fields Ppo.PpoConfig.seedDefaults f
                        |> Ppo.PpoConfig.validate
                    | n when n.StartsWith "dqn-" ->
                        Config.load Dqn.DqnConfig.fields Dqn.DqnConfig.defaults f
                        |> Dqn.DqnConfig.validate
                    | n when n.StartsWith "grpo-" ->
                        Config.load Grpo.GrpoConfig.fields Grpo.GrpoConfig.defaults f
                        |> Grpo.GrpoConfig.validate
                    | n when n.StartsWith "reinforce-" ->
                        Config.load Reinforce.ReinforceConfig.fields Reinforce.ReinforceConfig.defaults f
                        |> Reinforce.ReinforceConfig.validate
                    | n -> failtest $"{n}: a config name starts with its algorithm (ppo-, dqn-, grpo-, reinforce-)"
            }

            test "parses a YAML mapping with comments, lists and every field type" {
                let yaml =
                    """
# PPO on Pendulum
env_id: Pendulum-v1   # trailing comment
device: cpu
learning_rate: 3e-4
gamma: 0.9
num_envs: 8
total_timesteps: 1_000_000
anneal_lr: false
hidden:
  - 32
  - 16
target_kl: 0.015
exp_name: "my run: #1"
"""

                let c = parse yaml

                Expect.equal
                    c
                    { defaults with
                        EnvId = "Pendulum-v1"
                        LearningRate = 3e-4
                        Gamma = 0.9
                        NumEnvs = 8
                        TotalTimesteps = 1_000_000L
                        AnnealLr = false
                        Hidden = [ 32; 16 ]
                        TargetKl = Some 0.015
                        ExpName = "my run: #1"
                    }
                    "every key applied, the rest default"
            }

            test "an empty document gives the defaults" {
                Expect.equal (parse "") defaults "empty"
                Expect.equal (parse "# only a comment\n") defaults "comment only"
            }

            test "integers accept 1e5, 100_000, 2e6 and 2.5e3" {
                for text, expected in
                    [
                        "1e5", 100_000L
                        "100_000", 100_000L
                        "2e6", 2_000_000L
                        "2.5e3", 2500L
                        "+7", 7L
                    ] do
                    let c = parse (sprintf "total_timesteps: %s" text)
                    Expect.equal c.TotalTimesteps expected text

                Expect.equal (parse "num_envs: 1e1").NumEnvs 10 "int field with exponent"
            }

            test "a fractional integer is refused with key, value and allowed" {
                let msg, key, value, allowed, problem =
                    configError (fun () -> parse "num_envs: 1.5")

                Expect.equal key "num_envs" "key"
                Expect.equal value "1.5" "value"
                Expect.equal allowed "integer >= 1" "allowed"
                Expect.stringContains problem "whole" "problem"
                Expect.stringContains msg "num_envs" "message names the key"
                Expect.stringContains msg "1.5" "message names the value"
            }

            test "an integer too large for 32 bits is refused" {
                let _, key, _, _, problem = configError (fun () -> parse "num_envs: 3e9")
                Expect.equal key "num_envs" "key"
                Expect.stringContains problem "32-bit" "problem"
            }

            test "an unknown key names it, suggests the closest and lists the valid keys" {
                let msg, key, _, allowed, problem =
                    configError (fun () -> parse "learning_rat: 0.1")

                Expect.equal key "learning_rat" "key"
                Expect.stringContains problem "did you mean 'learning_rate'" "suggestion"
                Expect.stringContains allowed "gamma" "lists valid keys"
                Expect.stringContains msg "learning_rat" "message"
                let _, _, _, _, p2 = configError (fun () -> parse "num-envs: 3")
                Expect.stringContains p2 "num_envs" "dash vs underscore"
                let _, _, _, _, p3 = configError (fun () -> parse "zzzzzzzzzz: 3")
                Expect.equal p3 "unknown key" "no silly suggestion"
            }

            test "out-of-range and non-numeric values are refused" {
                let msg, key, value, allowed, problem =
                    configError (fun () -> parse "learning_rate: 0")

                Expect.equal
                    (key, value, allowed, problem)
                    ("learning_rate", "0", "float > 0", "out of range")
                    "lr <= 0"

                Expect.stringContains msg "> 0" "message says what is allowed"
                let _, _, _, allowed, _ = configError (fun () -> parse "gamma: 1.5")
                Expect.equal allowed "float in (0, 1]" "gamma range"
                let _, _, value, _, problem = configError (fun () -> parse "gamma: abc")
                Expect.equal (value, problem) ("abc", "not a number") "non-numeric"
                let _, _, _, _, problem = configError (fun () -> parse "gamma:")
                Expect.equal problem "missing value" "empty value"
                let _, _, _, _, problem = configError (fun () -> parse "anneal_lr: maybe")
                Expect.equal problem "not a boolean" "bool"
                let _, _, _, _, problem = configError (fun () -> parse "hidden: [64, 0]")
                Expect.stringContains problem "item 1" "list item named"
            }

            test "a value outside an allowed list names the choices and suggests one" {
                let msg, key, value, allowed, _ = configError (fun () -> parse "device: tpu")
                Expect.equal (key, value, allowed) ("device", "tpu", "one of: cpu, cuda") "device"
                Expect.stringContains msg "cpu, cuda" "message lists choices"
                let _, _, _, _, problem = configError (fun () -> parse "env_id: CartPole-v2")
                Expect.stringContains problem "CartPole-v1" "suggests the closest env"
            }

            test "YAML syntax errors, duplicates and nested mappings are refused" {
                let msg, key, _, _, _ =
                    configError (fun () -> parse "gamma: 0.9\nlearning_rate: a: b\n")

                Expect.equal key "" "no key"
                Expect.stringContains msg "line 2" "syntax error has a position"
                let msg, _, _, _, _ = configError (fun () -> parse "gamma: [0.9\nlearning_rate: 1")
                Expect.stringContains msg "YAML error" "unterminated list"
                let msg, _, _, _, _ = configError (fun () -> parse "gamma: 0.9\ngamma: 0.8\n")
                Expect.stringContains (msg.ToLowerInvariant()) "duplicate" "duplicate key"
                let _, key, _, _, problem = configError (fun () -> parse "gamma:\n  a: 1\n")
                Expect.equal key "gamma" "nested mapping key"
                Expect.stringContains problem "nested" "nested mapping"
                let _, _, _, _, problem = configError (fun () -> parse "- 1\n- 2\n")
                Expect.stringContains problem "mapping" "top-level list"
            }

            test "load names the file; a missing file is a ConfigError" {
                let dir =
                    Path.Combine(Path.GetTempPath(), "rl-config-" + Guid.NewGuid().ToString "N")

                Directory.CreateDirectory dir |> ignore

                try
                    let path = Path.Combine(dir, "bad.yaml")
                    File.WriteAllText(path, "gamma: 2\n")
                    let msg, _, _, _, _ = configError (fun () -> Config.load fields defaults path)
                    Expect.stringContains msg path "file named"

                    let msg, _, _, _, _ =
                        configError (fun () -> Config.load fields defaults (path + ".nope"))

                    Expect.stringContains msg "not found" "missing file"
                finally
                    Directory.Delete(dir, true)
            }

            test "overrides apply in order; values may contain '='" {
                let c =
                    defaults
                    |> Config.withOverrides
                        fields
                        [
                            "gamma=0.5"
                            "num_envs=16"
                            "gamma=0.25"
                            "hidden=128,128,64"
                            "exp_name=a=b"
                            "target_kl=0.02"
                            "total_timesteps=2e6"
                        ]

                Expect.equal c.Gamma 0.25 "later wins"
                Expect.equal c.NumEnvs 16 "int"
                Expect.equal c.Hidden [ 128; 128; 64 ] "list"
                Expect.equal c.ExpName "a=b" "split at first ="
                Expect.equal c.TargetKl (Some 0.02) "option"
                Expect.equal c.TotalTimesteps 2_000_000L "1e-notation"

                Expect.equal
                    ((Config.withOverrides fields [ "target_kl=null"; "hidden=[]" ] c).TargetKl)
                    None
                    "null clears"
            }

            test "bad overrides are refused with the override named" {
                let msg, key, _, _, problem =
                    configError (fun () -> Config.withOverrides fields [ "gama=0.5" ] defaults)

                Expect.equal key "gama" "key"
                Expect.stringContains problem "gamma" "suggestion"
                Expect.stringContains msg "override 'gama=0.5'" "source"

                let msg, _, _, _, _ =
                    configError (fun () -> Config.withOverrides fields [ "=3" ] defaults)

                Expect.stringContains msg "key=value" "malformed"

                let _, _, _, _, problem =
                    configError (fun () -> Config.withOverrides fields [ "device=gpu" ] defaults)

                Expect.stringContains problem "not a valid choice" "choice"
            }

            test "splitOverrides separates key=value from other arguments" {
                let ov, rest =
                    Config.splitOverrides [ "--config"; "a.yaml"; "gamma=0.9"; "--flag=x"; "seed=3" ]

                Expect.equal ov [ "gamma=0.9"; "seed=3" ] "overrides"
                Expect.equal rest [ "--config"; "a.yaml"; "--flag=x" ] "others"
                configError (fun () -> Config.splitOverrides [ "=5" ]) |> ignore
                configError (fun () -> Config.splitOverrides [ "my key=5" ]) |> ignore
            }

            test "cross-field checks run in resolve, after file and overrides" {
                let msg, key, value, allowed, _ =
                    configError (fun () ->
                        Config.resolve
                            fields
                            defaults
                            validate
                            None
                            [ "num_envs=1"; "num_steps=64"; "minibatch_size=128" ])

                Expect.equal (key, value) ("minibatch_size", "128") "key and value"
                Expect.stringContains allowed "= 64" "allowed names the bound"
                Expect.stringContains msg "minibatch_size" "message"
                let ok = Config.resolve fields defaults validate None [ "minibatch_size=64" ]
                Expect.equal ok.MinibatchSize 64 "valid config passes"
            }

            test "toYaml writes docs as comments and parses back to the same record" {
                let c =
                    { defaults with
                        TargetKl = Some 0.01
                        ExpName = "quote \" and # hash: colon\nnew line"
                        Hidden = []
                    }

                let yaml = Config.toYaml fields c
                Expect.stringContains yaml "# Adam step size.\n# allowed: float > 0\nlearning_rate: 0.00025\n" "doc"
                Expect.stringContains yaml "# Discount factor\n# per step.\n" "multi-line doc"
                Expect.stringContains yaml "hidden: []" "list"
                Expect.equal (parse yaml) c "round trip"
                Expect.equal (parse (Config.toYaml fields defaults)) defaults "defaults round trip"
                Expect.equal (Config.parse fields c (Config.toYaml fields defaults)) defaults "independent of the base"
            }

            testProperty "toYaml then parse is the identity"
            <| fun
                   (lr: NormalFloat,
                    g: NormalFloat,
                    n: PositiveInt,
                    total: int64,
                    hidden: PositiveInt list,
                    kl: NormalFloat option,
                    name: string,
                    anneal: bool) ->
                let clean (s: string) =
                    if isNull s then
                        ""
                    else
                        String(s.ToCharArray() |> Array.filter (Char.IsSurrogate >> not))

                let c =
                    { defaults with
                        LearningRate = abs lr.Get + 1e-300
                        Gamma =
                            (if g.Get > 0.0 && g.Get <= 1.0 then
                                 g.Get
                             else
                                 1.0 / (1.0 + abs g.Get))
                        NumEnvs = n.Get
                        TotalTimesteps = max 1L (abs (total % Int64.MaxValue))
                        Hidden = hidden |> List.map (fun h -> h.Get)
                        TargetKl = kl |> Option.map (fun k -> abs k.Get + 1e-9)
                        ExpName = clean name
                        AnnealLr = anneal
                    }

                parse (Config.toYaml fields c) = c

            test "pairs lists every key with its text" {
                let p = Config.pairs fields defaults
                Expect.equal (p |> List.map fst) (fields |> List.map (fun f -> f.Key)) "keys in order"
                Expect.contains p ("total_timesteps", "500000") "int64 text"
                Expect.contains p ("target_kl", "null") "none"
            }

            test "range texts use the invariant culture" {
                let saved = Globalization.CultureInfo.CurrentCulture
                Globalization.CultureInfo.CurrentCulture <- Globalization.CultureInfo "de-DE"

                try
                    Expect.equal (fst (Allow.openClosed 0.0 0.5)) "in (0, 0.5]" "no decimal comma"
                    Expect.equal (ConfigText.formatFloat 0.25) "0.25" "values too"
                    Expect.equal (ConfigText.parseFloat "0.25") (Ok 0.25) "and parsing"
                finally
                    Globalization.CultureInfo.CurrentCulture <- saved
            }

            test "a field list with duplicate keys is a programming error" {
                Expect.throwsT<ArgumentException>
                    (fun () -> Config.parse (fields @ [ fields.Head ]) defaults "" |> ignore)
                    "duplicate field keys"
            }
        ]
