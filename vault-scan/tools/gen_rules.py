#!/usr/bin/env python3
"""Generates the table-shaped rules in ../rules/*.toml (prefix tokens and keyed values).

Hand-written rules (AWS, PEM, JWT, database URLs, generic assignments, vault's own) live in
rules/core.toml and are not generated. Every example is fake: bodies are FAKE/DEMO/zeros,
checksummed ones carry a computed CRC32 of a fake body. Run from vault-scan/: python3 tools/gen_rules.py
"""
import zlib

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

def b62(n, width=6):
    s = ""
    while n:
        n, r = divmod(n, 62)
        s = B62[r] + s
    return s.rjust(width, "0")

def fake_body(n, cls):
    if cls == "hex" and 8 <= n < 12:
        return "dead" + "0" * (n - 8) + "beef"
    if cls == "hex":
        core = "deadbeef"
        return (core + "0" * n)[: n - 4] + "beef" if n >= 12 else ("0" * n)
    if cls == "HEX":
        return ("DEADBEEF" + "0" * n)[: n - 4] + "BEEF"
    if cls == "digits":
        return "0" * n
    if cls == "lower":
        return ("fake" + "x0" * n)[: n - 4] + "demo"
    if n < 10:
        return ("FAKE" + "0" * n)[:n]
    return "FAKE" + "0" * (n - 8) + "DEMO"

CLASSES = {
    "alnum": "[A-Za-z0-9]", "alnum_": "[A-Za-z0-9_]", "alnum-": "[A-Za-z0-9_-]",
    "hex": "[a-f0-9]", "HEX": "[A-F0-9]", "digits": "[0-9]", "lower": "[a-z0-9]",
    "b64": "[A-Za-z0-9+/]", "b64url": "[A-Za-z0-9_-]",
    "bech32": "[02-9AC-HJ-NP-Z]", "hexi": "[A-Fa-f0-9]",
}

def q(s):
    return "'''" + s + "'''"

def esc(s):
    return s.replace("\\", "\\\\").replace('"', '\\"')

out = {}

def emit(file, rid, provider, name, pattern, keywords, examples, negatives, validator=None,
         entropy=None, confidence="high", window=None, before=None, ignore_case=False,
         value_checks=False):
    lines = ["[[rule]]", f'id = "{rid}"', f'provider = "{provider}"', f'name = "{esc(name)}"',
             f"pattern = {q(pattern)}", "keywords = [" + ", ".join(f'"{esc(k)}"' for k in keywords) + "]"]
    if validator:
        lines.append(f'validator = "{validator}"')
        # npm documents GitHub's checksum for its tokens: a failing one is not an npm token.
        lines.append('checksum = "guarantee"')
    if entropy:
        lines.append(f"entropy = {entropy}")
    if confidence != "high":
        lines.append(f'confidence = "{confidence}"')
    if value_checks:
        lines.append("value_checks = true")
    if window:
        lines.append(f"window = {window}")
    if before is not None:
        lines.append(f"window_before = {before}")
    if ignore_case:
        lines.append("ignore_case = true")
    lines.append("examples = [" + ", ".join(f'"{esc(e)}"' for e in examples) + "]")
    lines.append("negative_examples = [" + ", ".join(f'"{esc(e)}"' for e in negatives) + "]")
    out.setdefault(file, []).append("\n".join(lines))

# --- prefix tokens: (file, id, provider, name, prefix regex, literal example prefix, keyword, class, len, extra-suffix-regex)
PREFIX = [
    ("vcs", "gitlab.pat", "gitlab", "GitLab personal access token", "glpat-", "glpat-", "alnum-", 20),
    ("vcs", "gitlab.pipeline-trigger", "gitlab", "GitLab pipeline trigger token", "glptt-", "glptt-", "hex", 40),
    ("vcs", "gitlab.runner-registration", "gitlab", "GitLab runner registration token", "GR1348941", "GR1348941", "alnum-", 20),
    ("vcs", "gitlab.runner-auth", "gitlab", "GitLab runner authentication token", "glrt-", "glrt-", "alnum-", 20),
    ("vcs", "gitlab.deploy-token", "gitlab", "GitLab deploy token", "gldt-", "gldt-", "alnum-", 20),
    ("vcs", "gitlab.feed-token", "gitlab", "GitLab feed token", "glft-", "glft-", "alnum-", 20),
    ("vcs", "gitlab.oauth-secret", "gitlab", "GitLab OAuth application secret", "gloas-", "gloas-", "alnum-", 64),
    ("vcs", "gitlab.scim-token", "gitlab", "GitLab SCIM token", "glsoat-", "glsoat-", "alnum-", 20),
    ("vcs", "gitlab.agent-token", "gitlab", "GitLab agent for Kubernetes token", "glagent-", "glagent-", "alnum-", 50),
    ("vcs", "gitlab.incoming-mail", "gitlab", "GitLab incoming mail token", "glimt-", "glimt-", "alnum-", 25),
    ("vcs", "bitbucket.app-password", "bitbucket", "Bitbucket app password", "ATBB", "ATBB", "alnum", 32),
    ("vcs", "github.fine-grained-pat", "github", "GitHub fine-grained personal access token", "github_pat_", "github_pat_", "alnum_", 82),
    ("ai", "openai.project-key", "openai", "OpenAI project API key", "sk-proj-", "sk-proj-", "alnum-", "40,300"),
    ("ai", "openai.service-account-key", "openai", "OpenAI service account key", "sk-svcacct-", "sk-svcacct-", "alnum-", "40,300"),
    ("ai", "openai.admin-key", "openai", "OpenAI admin key", "sk-admin-", "sk-admin-", "alnum-", "40,300"),
    ("ai", "anthropic.api-key", "anthropic", "Anthropic API key", r"sk-ant-api[0-9]{2,3}-", "sk-ant-api03-", "alnum-", "80,120"),
    ("ai", "anthropic.admin-key", "anthropic", "Anthropic admin key", "sk-ant-admin01-", "sk-ant-admin01-", "alnum-", "80,120"),
    ("ai", "anthropic.oauth-token", "anthropic", "Anthropic OAuth token", "sk-ant-oat01-", "sk-ant-oat01-", "alnum-", "80,120"),
    ("ai", "openrouter.api-key", "openrouter", "OpenRouter API key", "sk-or-v1-", "sk-or-v1-", "hex", 64),
    ("ai", "huggingface.token", "huggingface", "Hugging Face access token", "hf_", "hf_", "alnum", 34),
    ("ai", "huggingface.org-token", "huggingface", "Hugging Face organisation token", "api_org_", "api_org_", "alnum", 34),
    ("ai", "groq.api-key", "groq", "Groq API key", "gsk_", "gsk_", "alnum", 52),
    ("ai", "xai.api-key", "xai", "xAI API key", "xai-", "xai-", "alnum_", 80),
    ("ai", "replicate.api-token", "replicate", "Replicate API token", "r8_", "r8_", "alnum", 37),
    ("ai", "perplexity.api-key", "perplexity", "Perplexity API key", "pplx-", "pplx-", "alnum", 48),
    ("ai", "deepseek.api-key", "deepseek", "DeepSeek API key", "sk-", "sk-", "hex", 32),
    ("ai", "langsmith.api-key", "langchain", "LangSmith API key", "lsv2_pt_", "lsv2_pt_", "hex", 32),
    ("ai", "langsmith.service-key", "langchain", "LangSmith service key", "lsv2_sk_", "lsv2_sk_", "hex", 32),
    ("ai", "nvidia.api-key", "nvidia", "NVIDIA NGC API key", "nvapi-", "nvapi-", "alnum-", 64),
    ("ai", "fireworks.api-key", "fireworks", "Fireworks AI API key", "fw_", "fw_", "alnum", 24),
    ("ai", "cerebras.api-key", "cerebras", "Cerebras API key", "csk-", "csk-", "lower", 48),
    ("ai", "tavily.api-key", "tavily", "Tavily API key", "tvly-", "tvly-", "alnum", 32),
    ("ai", "elevenlabs.api-key", "elevenlabs", "ElevenLabs API key", "sk_", "sk_", "hex", 48),
    ("ai", "assemblyai.api-key", "assemblyai", "AssemblyAI key", "aai_", "aai_", "hex", 32),
    ("ai", "weightsandbiases.api-key", "wandb", "Weights & Biases API key", "wandb_v1_", "wandb_v1_", "alnum", 40),
    ("ai", "pinecone.api-key", "pinecone", "Pinecone API key", "pcsk_", "pcsk_", "alnum_", 60),
    ("ai", "mistral-codestral.none", None, None, None, None, None, 0),
    ("chat", "slack.bot-token", "slack", "Slack bot token", r"xoxb-[0-9A-Za-z]{8,13}-[0-9A-Za-z]{8,13}-", "xoxb-000000000000-0000000000000-", "alnum", "20,48"),
    ("chat", "slack.user-token", "slack", "Slack user token", r"xoxp-[0-9]{10,13}-[0-9]{10,13}-[0-9]{10,13}-", "xoxp-000000000000-0000000000000-0000000000000-", "hex", 32),
    ("chat", "slack.app-token", "slack", "Slack app-level token", r"xapp-[0-9]-[A-Z0-9]{9,11}-[0-9]{10,13}-", "xapp-1-A00000000FA-0000000000000-", "hex", 64),
    ("chat", "slack.config-access-token", "slack", "Slack configuration access token", r"xoxe\.xox[bp]-[0-9]-", "xoxe.xoxp-1-", "alnum", "100,400"),
    ("chat", "slack.config-refresh-token", "slack", "Slack configuration refresh token", r"xoxe-[0-9]-", "xoxe-1-", "alnum", "100,400"),
    ("chat", "slack.legacy-workspace-token", "slack", "Slack legacy workspace token", r"xoxa-[0-9]-", "xoxa-2-", "alnum", 40),
    ("chat", "slack.legacy-token", "slack", "Slack legacy token", r"xoxs-[0-9]{10,13}-", "xoxs-000000000000-", "alnum", 40),
    ("chat", "discord.webhook", "discord", "Discord webhook URL", r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/", "https://discord.com/api/webhooks/000000000000000000/", "alnum-", 68),
    ("chat", "microsoft-teams.webhook", "microsoft", "Microsoft Teams incoming webhook", r"https://[a-z0-9-]+\.webhook\.office\.com/webhookb2/[a-f0-9-]{36}@[a-f0-9-]{36}/IncomingWebhook/", "https://fake.webhook.office.com/webhookb2/00000000-0000-4000-8000-00000000dead@00000000-0000-4000-8000-00000000dead/IncomingWebhook/", "hex", 32),
    ("chat", "mattermost.none", None, None, None, None, None, 0),
    ("pay", "stripe.secret-key-live", "stripe", "Stripe live secret key", "sk_live_", "sk_live_", "alnum", "16,120"),
    ("pay", "stripe.secret-key-test", "stripe", "Stripe test secret key", "sk_test_", "sk_test_", "alnum", "16,120"),
    ("pay", "stripe.restricted-key-live", "stripe", "Stripe live restricted key", "rk_live_", "rk_live_", "alnum", "16,120"),
    ("pay", "stripe.restricted-key-test", "stripe", "Stripe test restricted key", "rk_test_", "rk_test_", "alnum", "16,120"),
    ("pay", "stripe.webhook-secret", "stripe", "Stripe webhook signing secret", "whsec_", "whsec_", "alnum", 32),
    ("pay", "square.access-token", "square", "Square access token", "EAAA", "EAAA", "alnum-", 60),
    ("pay", "square.oauth-secret", "square", "Square OAuth secret", "sq0csp-", "sq0csp-", "alnum-", 43),
    ("pay", "square.application-id", "square", "Square access token (legacy)", "sq0atp-", "sq0atp-", "alnum-", 22),
    ("pay", "shopify.access-token", "shopify", "Shopify access token", "shpat_", "shpat_", "hex", 32),
    ("pay", "shopify.custom-app-token", "shopify", "Shopify custom app token", "shpca_", "shpca_", "hex", 32),
    ("pay", "shopify.private-app-token", "shopify", "Shopify private app token", "shppa_", "shppa_", "hex", 32),
    ("pay", "shopify.shared-secret", "shopify", "Shopify shared secret", "shpss_", "shpss_", "hex", 32),
    ("pay", "flutterwave.secret-key", "flutterwave", "Flutterwave secret key", "FLWSECK_TEST-", "FLWSECK_TEST-", "hex", 32),
    ("pay", "flutterwave.public-key", "flutterwave", "Flutterwave public key", "FLWPUBK_TEST-", "FLWPUBK_TEST-", "hex", 32),
    ("pay", "paystack.secret-key", "paystack", "Paystack secret key", "sk_live_", "sk_live_", "hex", 40),
    ("pay", "lemonsqueezy.none", None, None, None, None, None, 0),
    ("pay", "coinbase.none", None, None, None, None, None, 0),
    ("pay", "adyen.none", None, None, None, None, None, 0),
    ("pay", "gocardless.access-token", "gocardless", "GoCardless live access token", "live_", "live_", "alnum-", 40),
    ("pay", "razorpay.key-id", "razorpay", "Razorpay live key id", "rzp_live_", "rzp_live_", "alnum", 14),
    ("pay", "braintree.access-token", "braintree", "Braintree access token", r"access_token\$production\$[a-z0-9]{16}\$", "access_token$production$0000000000000000$", "hex", 32),
    ("mail", "sendgrid.api-key", "sendgrid", "SendGrid API key", r"SG\.[A-Za-z0-9_-]{22}\.", "SG.FAKE00000000000000DEMO.", "alnum-", 43),
    ("mail", "mailgun.api-key", "mailgun", "Mailgun API key", "key-", "key-", "hex", 32),
    ("mail", "mailchimp.api-key", "mailchimp", "Mailchimp API key", None, None, None, 0),
    ("mail", "postmark.none", None, None, None, None, None, 0),
    # Brevo v3 keys: 64 hex characters, then (on keys issued since 2020) -<16 alphanumerics>.
    ("mail", "sendinblue.api-key", "brevo", "Brevo (Sendinblue) API key", "xkeysib-", "xkeysib-", "brevo", 64),
    ("mail", "sendinblue.smtp-key", "brevo", "Brevo SMTP key", "xsmtpsib-", "xsmtpsib-", "brevo", 64),
    ("mail", "mailersend.api-key", "mailersend", "MailerSend API token", "mlsn.", "mlsn.", "hex", 64),
    ("mail", "resend.api-key", "resend", "Resend API key", "re_", "re_", "alnum", 32),
    ("mail", "loops.none", None, None, None, None, None, 0),
    # Twilio's account SID (AC...) and API key SID (SK...) are identifiers (the SID is the
    # username; the auth token or key secret is the password): no rule (issue 18). The
    # secret is found by twilio.keyed-credential.
    ("comms", "telnyx.api-key", "telnyx", "Telnyx API key", "KEY0", "KEY0", "HEX", 60),
    ("comms", "messagebird.none", None, None, None, None, None, 0),
    ("comms", "line.none", None, None, None, None, None, 0),
    ("cloud", "digitalocean.pat", "digitalocean", "DigitalOcean personal access token", "dop_v1_", "dop_v1_", "hex", 64),
    ("cloud", "digitalocean.oauth-token", "digitalocean", "DigitalOcean OAuth token", "doo_v1_", "doo_v1_", "hex", 64),
    ("cloud", "digitalocean.refresh-token", "digitalocean", "DigitalOcean refresh token", "dor_v1_", "dor_v1_", "hex", 64),
    ("cloud", "azure.storage-connection-string", "azure", "Azure storage account key in a connection string", r"AccountKey=", "AccountKey=", "b64", 86),
    ("cloud", "azure.sas-signature", "azure", "Azure shared access signature", r"[?&]sig=", "?sig=", "b64", 43),
    ("cloud", "azure.ad-client-secret", "azure", "Azure AD client secret", r"[a-zA-Z0-9_~.]{3}\dQ~", "FAK0Q~", "alnum-", 34),
    ("cloud", "azure.devops-pat", "azure", "Azure DevOps PAT", None, None, None, 0),
    ("cloud", "google.api-key", "google", "Google API key", "AIza", "AIza", "alnum-", 35),
    ("cloud", "google.oauth-client-secret", "google", "Google OAuth client secret", "GOCSPX-", "GOCSPX-", "alnum-", 28),
    ("cloud", "google.oauth-refresh-token", "google", "Google OAuth refresh token", r"1//0", "1//0", "alnum-", "40,512"),
    ("cloud", "google.oauth-access-token", "google", "Google OAuth access token", r"ya29\.", "ya29.", "alnum-", "40,400"),
    ("cloud", "alibaba.access-key-id", "alibaba", "Alibaba Cloud AccessKey ID", "LTAI", "LTAI", "alnum", 20),
    ("cloud", "tencent.secret-id", "tencent", "Tencent Cloud SecretId", "AKID", "AKID", "alnum", 32),
    ("cloud", "ibm.none", None, None, None, None, None, 0),
    ("cloud", "heroku.api-key-v2", "heroku", "Heroku platform API key", "HRKU-", "HRKU-", "alnum-", 60),
    ("cloud", "vercel.none", None, None, None, None, None, 0),
    ("cloud", "netlify.none", None, None, None, None, None, 0),
    ("cloud", "fly.access-token", "fly", "Fly.io access token", "fo1_", "fo1_", "alnum-", 43),
    ("cloud", "scaleway.none", None, None, None, None, None, 0),
    ("cloud", "linode.none", None, None, None, None, None, 0),
    ("cloud", "cloudflare.origin-ca-key", "cloudflare", "Cloudflare Origin CA key", r"v1\.0-[a-f0-9]{24}-", "v1.0-deadbeef0000000000000000-", "hex", 146),
    ("cloud", "databricks.token", "databricks", "Databricks personal access token", "dapi", "dapi", "hex", 32),
    ("cloud", "doppler.service-token", "doppler", "Doppler service token", r"dp\.st\.(?:[a-z0-9_-]{2,35}\.)?", "dp.st.", "alnum", "40,44"),
    ("cloud", "doppler.personal-token", "doppler", "Doppler personal token", r"dp\.pt\.", "dp.pt.", "alnum", "40,44"),
    ("cloud", "doppler.cli-token", "doppler", "Doppler CLI token", r"dp\.ct\.", "dp.ct.", "alnum", "40,44"),
    ("cloud", "doppler.scim-token", "doppler", "Doppler SCIM token", r"dp\.scim\.", "dp.scim.", "alnum", "40,44"),
    ("cloud", "doppler.audit-token", "doppler", "Doppler audit token", r"dp\.audit\.", "dp.audit.", "alnum", "40,44"),
    ("cloud", "pulumi.access-token", "pulumi", "Pulumi access token", "pul-", "pul-", "hex", 40),
    ("cloud", "terraform.cloud-token", "hashicorp", "Terraform Cloud API token", r"[a-zA-Z0-9]{14}\.atlasv1\.", "FAKE0000000000.atlasv1.", "alnum-", 67),
    ("cloud", "hashicorp.vault-service-token", "hashicorp", "HashiCorp Vault service token", r"hvs\.", "hvs.", "alnum-", "90,512"),
    ("cloud", "hashicorp.vault-batch-token", "hashicorp", "HashiCorp Vault batch token", r"hvb\.", "hvb.", "alnum-", "90,1024"),
    ("cloud", "planetscale.password", "planetscale", "PlanetScale password", "pscale_pw_", "pscale_pw_", "alnum_", 43),
    ("cloud", "planetscale.api-token", "planetscale", "PlanetScale API token", "pscale_tkn_", "pscale_tkn_", "alnum_", 43),
    ("cloud", "planetscale.oauth-token", "planetscale", "PlanetScale OAuth token", "pscale_oauth_", "pscale_oauth_", "alnum_", 43),
    ("cloud", "supabase.service-key", "supabase", "Supabase secret key", "sb_secret_", "sb_secret_", "alnum-", 31),
    ("cloud", "neon.none", None, None, None, None, None, 0),
    ("cloud", "railway.none", None, None, None, None, None, 0),
    ("cloud", "render.api-key", "render", "Render API key", "rnd_", "rnd_", "alnum", 32),
    ("cloud", "tailscale.api-key", "tailscale", "Tailscale API key", "tskey-api-", "tskey-api-", "alnum-", 40),
    ("cloud", "tailscale.auth-key", "tailscale", "Tailscale auth key", "tskey-auth-", "tskey-auth-", "alnum-", 40),
    ("cloud", "ngrok.none", None, None, None, None, None, 0),
    ("cloud", "age.secret-key", "age", "age secret key", "AGE-SECRET-KEY-1", "AGE-SECRET-KEY-1", "bech32", 58),
    ("devtools", "npm.access-token", "npm", "npm access token", "npm_", "npm_", "npm", 36),
    ("devtools", "pypi.upload-token", "pypi", "PyPI upload token", "pypi-AgEIcHlwaS5vcmc", "pypi-AgEIcHlwaS5vcmc", "alnum-", "50,2048"),
    ("devtools", "pypi.test-upload-token", "pypi", "TestPyPI upload token", "pypi-AgENdGVzdC5weXBpLm9yZw", "pypi-AgENdGVzdC5weXBpLm9yZw", "alnum-", "50,2048"),
    ("devtools", "rubygems.api-key", "rubygems", "RubyGems API key", "rubygems_", "rubygems_", "hex", 48),
    ("devtools", "nuget.api-key", "nuget", "NuGet API key", "oy2", "oy2", "lower", 43),
    ("devtools", "cratesio.api-token", "cratesio", "crates.io API token", "cio", "cio", "alnum", 32),
    ("devtools", "dockerhub.pat", "docker", "Docker Hub personal access token", "dckr_pat_", "dckr_pat_", "alnum-", 27),
    ("devtools", "dockerhub.oat", "docker", "Docker Hub organisation access token", "dckr_oat_", "dckr_oat_", "alnum-", 32),
    ("devtools", "jfrog.api-key", "jfrog", "JFrog Artifactory API key", "AKCp", "AKCp", "alnum", 69),
    ("devtools", "jfrog.identity-token", "jfrog", "JFrog identity token", "cmVmdGtuOjAxOjE", "cmVmdGtuOjAxOjE", "alnum", 49),
    ("devtools", "sentry.user-token", "sentry", "Sentry user auth token", "sntryu_", "sntryu_", "hex", 64),
    ("devtools", "sentry.org-token", "sentry", "Sentry organisation auth token", "sntrys_", "sntrys_", "alnum_", 100),
    ("devtools", "grafana.service-account-token", "grafana", "Grafana service account token", r"glsa_[A-Za-z0-9]{32}_", "glsa_FAKE000000000000000000000000DEMO_", "hex", 8),
    ("devtools", "grafana.cloud-token", "grafana", "Grafana Cloud API token", "glc_", "glc_", "b64", "32,400"),
    ("devtools", "newrelic.user-key", "newrelic", "New Relic user API key", "NRAK-", "NRAK-", "HEX", 27),
    ("devtools", "newrelic.insert-key", "newrelic", "New Relic insert key", "NRII-", "NRII-", "alnum-", 32),
    ("devtools", "newrelic.browser-key", "newrelic", "New Relic browser API token", "NRJS-", "NRJS-", "hex", 19),
    ("devtools", "dynatrace.api-token", "dynatrace", "Dynatrace API token", r"dt0c01\.[A-Z0-9]{24}\.", "dt0c01.FAKE0000000000000000DEMO.", "alnum", 64),
    ("devtools", "linear.api-key", "linear", "Linear API key", "lin_api_", "lin_api_", "alnum", 40),
    ("devtools", "notion.integration-token", "notion", "Notion integration token", "secret_", "secret_", "alnum", 43),
    ("devtools", "notion.ntn-token", "notion", "Notion API token", "ntn_", "ntn_", "alnum", 46),
    ("devtools", "figma.pat", "figma", "Figma personal access token", "figd_", "figd_", "alnum-", 40),
    ("devtools", "atlassian.api-token", "atlassian", "Atlassian API token", "ATATT3", "ATATT3", "alnum-", 186),
    ("devtools", "asana.pat", "asana", "Asana personal access token", r"[0-9]/[0-9]{16}:", "1/0000000000000000:", "hex", 32),
    ("devtools", "clickup.pat", "clickup", "ClickUp personal token", r"pk_[0-9]{6,8}_", "pk_0000000_", "alnum", 32),
    ("devtools", "postman.api-key", "postman", "Postman API key", r"PMAK-[a-f0-9]{24}-", "PMAK-deadbeef0000000000000000-", "hex", 34),
    ("devtools", "buildkite.agent-token", "buildkite", "Buildkite agent token", "bkua_", "bkua_", "hex", 40),
    ("devtools", "circleci.pat", "circleci", "CircleCI personal token", r"CCIPAT_[A-Za-z0-9]{22,26}_", "CCIPAT_FAKE0000000000000000DEMO_", "alnum", 40),
    ("devtools", "snyk.none", None, None, None, None, None, 0),
    ("devtools", "sonarcloud.none", None, None, None, None, None, 0),
    ("devtools", "posthog.personal-key", "posthog", "PostHog personal API key", "phx_", "phx_", "alnum", 43),
    ("devtools", "posthog.project-key", "posthog", "PostHog project API key", "phc_", "phc_", "alnum", 43),
    ("devtools", "launchdarkly.api-key", "launchdarkly", "LaunchDarkly access token", "api-", "api-", "uuid", 36),
    ("devtools", "contentful.pat", "contentful", "Contentful personal access token", "CFPAT-", "CFPAT-", "alnum-", 43),
    ("devtools", "shippo.api-token", "shippo", "Shippo API token", "shippo_live_", "shippo_live_", "hex", 40),
    ("devtools", "easypost.api-key", "easypost", "EasyPost API key", "EZAK", "EZAK", "alnum", 54),
    ("devtools", "easypost.test-key", "easypost", "EasyPost test API key", "EZTK", "EZTK", "alnum", 54),
    ("devtools", "typeform.pat", "typeform", "Typeform personal access token", "tfp_", "tfp_", "alnum-", "40,64"),
    ("devtools", "frameio.token", "frameio", "Frame.io developer token", "fio-u-", "fio-u-", "alnum-", 64),
    ("devtools", "prefect.api-key", "prefect", "Prefect API key", "pnu_", "pnu_", "alnum", 36),
    ("devtools", "readme.api-key", "readme", "ReadMe API key", "rdme_", "rdme_", "lower", 70),
    ("devtools", "okta.none", None, None, None, None, None, 0),
    ("devtools", "mapbox.secret-token", "mapbox", "Mapbox secret token", r"sk\.eyJ[A-Za-z0-9_-]{40,}\.", "sk.eyJ1IjoiZmFrZSIsImEiOiJGQUtFMDAwMDAwMDAwMDAifQ.", "alnum-", 22),
    ("devtools", "duffel.api-token", "duffel", "Duffel API token", "duffel_test_", "duffel_test_", "alnum-", 43),
    ("devtools", "beamer.api-token", "beamer", "Beamer API token", "b_", "b_", "alnum-", 44),
    ("devtools", "dropbox.short-lived-token", "dropbox", "Dropbox short-lived token", r"sl\.", "sl.", "alnum-", "120,1400"),
    ("devtools", "intercom.none", None, None, None, None, None, 0),
    ("devtools", "infracost.api-key", "infracost", "Infracost API key", "ico-", "ico-", "alnum", 32),
    ("devtools", "octopus.api-key", "octopus", "Octopus Deploy API key", "API-", "API-", "HEX", 26),
    ("devtools", "harness.pat", "harness", "Harness personal access token", r"pat\.[A-Za-z0-9_-]{22}\.[a-f0-9]{24}\.", "pat.FAKE00000000000000DEMO.deadbeef0000000000000000.", "alnum", 20),
    ("devtools", "fastly.none", None, None, None, None, None, 0),
    ("devtools", "scalingo.api-token", "scalingo", "Scalingo API token", "tk-us-", "tk-us-", "alnum-", 48),
    ("devtools", "sumologic.none", None, None, None, None, None, 0),
    ("devtools", "authress.none", None, None, None, None, None, 0),
    ("devtools", "clojars.api-token", "clojars", "Clojars deploy token", "CLOJARS_", "CLOJARS_", "lower", 60),
    ("devtools", "private-packagist.token", "packagist", "Private Packagist token", "packagist_uut_", "packagist_uut_", "lower", 68),
    ("devtools", "defined-networking.api-token", "definednetworking", "Defined Networking API token", "dnkey-", "dnkey-", "alnum-", 80),
    ("devtools", "travis.none", None, None, None, None, None, 0),
    ("devtools", "twitch.none", None, None, None, None, None, 0),
    ("devtools", "yandex.api-key", "yandex", "Yandex API key", "AQVN", "AQVN", "alnum-", 35),
    ("devtools", "yandex.access-token", "yandex", "Yandex access token", "t1.", "t1.", "alnum-", 86),
    ("devtools", "zendesk.none", None, None, None, None, None, 0),
    ("social", "facebook.access-token", "facebook", "Facebook access token", "EAACEdEose0cBA", "EAACEdEose0cBA", "alnum", "40,400"),
    ("social", "twitter.bearer-token", "twitter", "Twitter/X app bearer token", "AAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAA", "alnum%", 60),
    ("social", "dropbox.long-lived-token", "dropbox", "Dropbox long-lived token", r"[a-z0-9]{11}AAAAAAAAAA", "fake0000000AAAAAAAAAA", "alnum-", 43),
    # --- added in scan2 from the providers' documented token formats
    ("cloud", "doppler.service-account-token", "doppler", "Doppler service account token", r"dp\.sa\.", "dp.sa.", "alnum", "40,44"),
    ("cloud", "supabase.access-token", "supabase", "Supabase personal access token", "sbp_", "sbp_", "alnum", 40),
    ("cloud", "mongodb-atlas.service-account-secret", "mongodb", "MongoDB Atlas service account secret", "mdb_sa_sk_", "mdb_sa_sk_", "alnum-", 40),
    ("cloud", "azure.app-config-connection-string", "azure", "Azure App Configuration connection string secret", r"\.azconfig\.io;Id=[A-Za-z0-9:/+=_-]{4,40};Secret=", ".azconfig.io;Id=FAKE-00-s0:DEMO;Secret=", "b64", 43),
    ("cloud", "azure.shared-access-key", "azure", "Azure Service Bus / Event Hubs / IoT Hub shared access key", "SharedAccessKey=", "SharedAccessKey=", "b64", 43),
    ("cloud", "netlify.pat", "netlify", "Netlify personal access token", "nfp_", "nfp_", "alnum", "36,48"),
    ("devtools", "sourcegraph.access-token", "sourcegraph", "Sourcegraph access token", r"sgp_(?:[a-f0-9]{16}_|local_)?", "sgp_", "hexi", 40),
    ("devtools", "sonarqube.project-token", "sonarqube", "SonarQube project analysis token", "sqp_", "sqp_", "hex", 40),
    ("devtools", "sonarqube.global-token", "sonarqube", "SonarQube global analysis token", "sqa_", "sqa_", "hex", 40),
    ("devtools", "sonarqube.user-token", "sonarqube", "SonarQube user token", "squ_", "squ_", "hex", 40),
    ("devtools", "grafana.legacy-api-key", "grafana", "Grafana API key (legacy, base64 JSON)", "eyJrIjoi", "eyJrIjoi", "b64", "40,200"),
    ("devtools", "okta.ssws-token", "okta", "Okta API token in an SSWS header", "SSWS 00", "SSWS 00", "alnum-", 40),
    # issue 18, breadth: documented prefixed formats
    ("cloud", "adafruit.io-key", "adafruit", "Adafruit IO key", "aio_", "aio_", "alnum", 28),
    ("cloud", "ubidots.token", "ubidots", "Ubidots API token", "BBFF-", "BBFF-", "alnum", 30),
    ("devtools", "dependency-track.api-key", "dependency-track", "Dependency-Track API key", "odt_", "odt_", "alnum_", "32,48"),
    ("devtools", "ionic.pat", "ionic", "Ionic personal access token", "ion_", "ion_", "alnum", 42),
    ("devtools", "stackhawk.api-key", "stackhawk", "StackHawk API key", r"hawk\.[A-Za-z0-9_-]{20}\.", "hawk.FAKE000000000000DEMO.", "alnum-", 20),
    ("devtools", "segment.public-api-token", "segment", "Segment Public API token", "sgp_", "sgp_", "alnum", 64),
    ("devtools", "nightfall.api-key", "nightfall", "Nightfall API key", "NF-", "NF-", "alnum", 32),
    ("ai", "voiceflow.api-key", "voiceflow", "Voiceflow API key", r"VF\.(?:DM|WS)\.[a-f0-9]{24}\.", "VF.DM.deadbeef0000000000000000.", "alnum", 16),
    ("pay", "pagarme.api-key", "pagarme", "Pagar.me API key", "ak_live_", "ak_live_", "alnum", 30),
    ("pay", "pagarme.test-api-key", "pagarme", "Pagar.me test API key", "ak_test_", "ak_test_", "alnum", 30),
    ("chat", "pubnub.publish-key", "pubnub", "PubNub publish key", "pub-c-", "pub-c-", "uuid", 36),
    ("chat", "pubnub.secret-key", "pubnub", "PubNub secret key", "sec-c-", "sec-c-", "b64", "40,64"),
    ("chat", "microsoft-teams.legacy-webhook", "microsoft", "Microsoft Teams legacy incoming webhook", r"https://outlook\.office(?:365)?\.com/webhook/[a-f0-9-]{36}@[a-f0-9-]{36}/IncomingWebhook/[a-f0-9]{32}/", "https://outlook.office.com/webhook/00000000-0000-4000-8000-00000000dead@00000000-0000-4000-8000-00000000dead/IncomingWebhook/deadbeef00000000000000000000beef/", "uuid", 36),
]

def cls_regex(cls, n):
    if isinstance(n, str):
        return CLASSES[cls] + "{" + n + "}"
    if cls == "uuid":
        return "[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}"
    if cls == "npm":
        return "[A-Za-z0-9]{36}"
    if cls == "brevo":
        return "[a-f0-9]{64}(?:-[A-Za-z0-9]{16})?"
    if cls == "alnum%":
        return f"[A-Za-z0-9%]{{{n}}}"
    return CLASSES[cls] + "{" + str(n) + "}"

def example_body(cls, n):
    if isinstance(n, str):
        n = int(n.split(",")[0])
    if cls == "uuid":
        return "00000000-0000-4000-8000-00000000dead"
    if cls == "bech32":
        return "FAKE" + "0" * (n - 7) + "XYZ"
    if cls in ("hexi", "brevo"):
        return fake_body(n, "hex")
    if cls == "npm":
        body = "FAKE" + "0" * 22 + "DEMO"
        return body + b62(zlib.crc32(body.encode()) & 0xFFFFFFFF)
    if cls in ("alnum-", "alnum_", "alnum%", "b64", "b64url"):
        return fake_body(n, "alnum")
    return fake_body(n, cls)

seen = set()
for (f, rid, prov, name, pre, lit, cls, n) in PREFIX:
    if prov is None or pre is None:
        continue
    assert rid not in seen, rid
    seen.add(rid)
    # keyword: the longest literal run of the prefix (regex metacharacters stripped)
    unescaped = pre.replace("\\.", ".").replace("\\$", "$")
    kw = None
    for size in range(len(lit), 1, -1):
        for i in range(0, len(lit) - size + 1):
            sub = lit[i:i + size]
            if sub in unescaped and "[" not in sub and "{" not in sub:
                kw = sub
                break
        if kw:
            break
    if not kw:
        print("skipped (no literal):", rid)
        continue
    body_re = cls_regex(cls, n)
    tail = r"(?:[^A-Za-z0-9_-]|$)" if not pre.startswith("http") else ""
    lead = r"(?:^|[^A-Za-z0-9_])" if pre[0].isalnum() or pre[0] == "[" else ""
    pattern = lead + "(" + pre + body_re + ")" + tail
    ex = lit + example_body(cls, n)
    validator = "crc32-base62" if cls == "npm" else None
    neg = [lit + "*" * 12, "the prefix " + lit + " alone"]
    if validator:
        neg.append("TOKEN=" + ex[:-1] + ("0" if ex[-1] != "0" else "1"))
    maxlen = int(str(n).split(",")[-1]) if str(n).split(",")[-1] else 300
    emit(f, rid, prov, name, pattern, [kw], [f'TOKEN="{ex}"', f"export SECRET={ex}"], neg,
         validator=validator, window=max(len(pre), len(lit)) + maxlen + 16, before=len(pre) + 2)

# --- suffix- and scheme-marked formats (added in scan2): the literal is not a leading prefix
C = "[./A-Za-z0-9]"  # crypt(3) base64 alphabet
CT = r"(?:[^./A-Za-z0-9]|$)"
SALT16 = "FAKEsalt0DEMO/.z"
for (rid, name, marker, kw, pattern, ex) in [
    ("password-hash.bcrypt", "bcrypt password hash", "2b", ["$2a$", "$2b$", "$2y$"],
     r"(\$2[aby]\$[0-9]{2}\$" + C + "{53})" + CT,
     "$2b$12$" + "FAKE" + "0" * 45 + "DEMO"),
    ("password-hash.sha512crypt", "SHA-512 crypt password hash", "6", ["$6$"],
     r"(\$6\$(?:rounds=[0-9]{4,9}\$)?" + C + r"{1,16}\$" + C + "{86})" + CT,
     "$6$" + SALT16 + "$" + "FAKE" + "0" * 78 + "DEMO"),
    ("password-hash.sha256crypt", "SHA-256 crypt password hash", "5", ["$5$"],
     r"(\$5\$(?:rounds=[0-9]{4,9}\$)?" + C + r"{1,16}\$" + C + "{43})" + CT,
     "$5$rounds=5000$" + SALT16 + "$" + "FAKE" + "0" * 35 + "DEMO"),
    ("password-hash.md5crypt", "MD5 crypt password hash", "1", ["$1$"],
     r"(\$1\$" + C + r"{1,8}\$" + C + "{22})" + CT,
     "$1$FAKEsalt$" + "FAKE" + "0" * 14 + "DEMO"),
]:
    emit("hashes", rid, "password-hash", name, pattern, kw,
         [f"root:{ex}:19000:0:99999:7:::", f'hash = "{ex}"'],
         [f"${marker}$rounds=5000$short$tooshort", f"echo ${marker}$HOME"],
         window=140, before=4)

# New Relic license (ingest) keys: 36 hex characters then the suffix NRAL
emit("devtools", "newrelic.license-key", "newrelic", "New Relic license key",
     r"(?:^|[^A-Za-z0-9_])([a-f0-9]{36}NRAL)(?:[^A-Za-z0-9_-]|$)", ["NRAL"],
     ['NEW_RELIC_LICENSE_KEY="' + "deadbeef" + "0" * 24 + "beef" + 'NRAL"', "license_key: " + "deadbeef" + "0" * 24 + "beefNRAL"],
     ["license_key: ************NRAL", "the suffix NRAL alone"], window=24, before=44)

# --- keyed values: provider keyword near an assignment, then a value of a fixed shape
KEYED = [
    # (provider, keywords, value class, length)
    ("mailchimp", ["mailchimp"], r"[a-f0-9]{32}-us[0-9]{1,2}", "deadbeef000000000000000000000000-us6"),
    ("postmark", ["postmark"], "uuid", None),
    ("heroku", ["heroku"], "uuid", None),
    ("vercel", ["vercel"], "alnum24", None),
    ("netlify", ["netlify"], "alnum-43", None),
    ("snyk", ["snyk"], "uuid", None),
    ("sonarcloud", ["sonar"], "hex40", None),
    ("okta", ["okta"], r"00[A-Za-z0-9_-]{40}", "00FAKE00000000000000000000000000000000DEMO"),
    ("intercom", ["intercom"], "b64-60", None),
    ("fastly", ["fastly"], "alnum-32", None),
    ("ngrok", ["ngrok"], r"[0-9A-Za-z]{27}_[0-9A-Za-z]{21}", "FAKE0000000000000000000DEMO_FAKE0000000000000DEMO"),
    ("linode", ["linode"], "hex64", None),
    ("scaleway", ["scaleway", "scw_secret"], "uuid", None),
    ("azure-devops", ["azure_devops", "ado_pat", "azdo"], "lower52", None),
    ("ibm", ["ibm_cloud", "ibmcloud", "ibm_api"], "alnum-44", None),
    ("lemonsqueezy", ["lemonsqueezy", "lemon_squeezy"], r"eyJ0eXAiOiJKV1Qi[A-Za-z0-9_.-]{100,}", "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.FAKE0000000000000000000000000000000000000000000000000000000000000000000000000000000000000DEMO"),
    ("coinbase", ["coinbase"], "alnum16", None),
    ("adyen", ["adyen"], r"AQE[A-Za-z0-9+/=_-]{80,}", "AQEFAKE00000000000000000000000000000000000000000000000000000000000000000000000000000DEMO"),
    ("loops", ["loops"], "hex32", None),
    ("messagebird", ["messagebird"], "alnum25", None),
    ("line", ["line_channel", "linebot", "line_token"], "b64-172", None),
    ("neon", ["neon_api", "neonctl"], "lower64", None),
    ("railway", ["railway"], "uuid", None),
    ("zendesk", ["zendesk"], "alnum40", None),
    ("twitch", ["twitch"], "lower30", None),
    ("travis", ["travis"], "alnum-22", None),
    ("sumologic", ["sumo_access", "sumologic"], "alnum64", None),
    ("algolia", ["algolia"], "hex32", None),
    ("airtable", ["airtable"], r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}", "pat" + fake_body(14, "alnum") + "." + fake_body(64, "hex")),
    ("auth0", ["auth0"], "alnum-64", None),
    ("bitly", ["bitly"], "hex40", None),
    ("box", ["box_token", "box_api", "box_client_secret"], "alnum32", None),
    ("cloudflare", ["cloudflare", "cf_api_token"], "alnum-40", None),
    ("cloudflare-global", ["cf_api_key", "cloudflare_api_key", "cloudflare_global"], "hex37", None),
    ("confluent", ["confluent"], "b64-64", None),
    ("datadog", ["datadog", "dd_api_key"], "hex32", None),
    ("datadog-app", ["dd_app_key", "datadog_app"], "hex40", None),
    ("deepgram", ["deepgram"], "hex40", None),
    ("etherscan", ["etherscan"], "HEX34", None),
    ("finnhub", ["finnhub"], "lower20", None),
    ("freshdesk", ["freshdesk"], "alnum20", None),
    ("gitter", ["gitter"], "hex40", None),
    ("hubspot", ["hubspot"], r"pat-(?:na|eu)1-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}", "pat-na1-00000000-0000-4000-8000-00000000dead"),
    ("hunter", ["hunter"], "hex40", None),
    ("infura", ["infura"], "hex32", None),
    ("ipinfo", ["ipinfo"], "hex14", None),
    ("jira", ["jira"], "alnum24", None),
    ("klaviyo", ["klaviyo"], r"pk_[a-f0-9]{34}", "pk_" + fake_body(34, "hex")),
    ("mapquest", ["mapquest"], "alnum32", None),
    ("mixpanel", ["mixpanel"], "hex32", None),
    ("nylas", ["nylas"], "alnum30", None),
    ("onesignal", ["onesignal"], "b64-48", None),
    ("opsgenie", ["opsgenie"], "uuid", None),
    ("pagerduty", ["pagerduty"], "alnum-20", None),
    ("pastebin", ["pastebin"], "alnum32", None),
    ("pipedrive", ["pipedrive"], "hex40", None),
    ("pusher", ["pusher"], "hex20", None),
    ("rapidapi", ["rapidapi"], "alnum-50", None),
    ("rollbar", ["rollbar"], "hex32", None),
    ("salesforce", ["salesforce", "sfdc"], r"00D[A-Za-z0-9]{12,15}![A-Za-z0-9_.]{90,100}", "00DFAKE00000DEMO!FAKE" + "0" * 86 + "DEMO"),
    # "segment" alone is an English word other APIs use for ids (an AWS Pinpoint SegmentId
    # is 32 hex characters): only Segment's own credential names count.
    ("segment", ["segment_write", "segment-write", "segmentwrite", "segment_key", "segment_api", "segment_token", "segment_secret"], "alnum32", None),
    ("sentry-dsn", ["sentry"], r"https://[a-f0-9]{32}@[a-z0-9.]+/[0-9]+", "https://deadbeef00000000000000000000beef@o0.ingest.sentry.io/0"),
    ("shodan", ["shodan"], "alnum32", None),
    ("smartsheet", ["smartsheet"], "alnum37", None),
    ("sparkpost", ["sparkpost"], "hex40", None),
    ("spotify", ["spotify"], "hex32", None),
    ("statuspage", ["statuspage"], "uuid", None),
    ("todoist", ["todoist"], "hex40", None),
    ("trello", ["trello"], "hex64", None),
    ("twitter-secret", ["twitter", "consumer_secret"], "alnum50", None),
    ("virustotal", ["virustotal"], "hex64", None),
    ("weatherapi", ["openweather", "weatherstack"], "hex32", None),
    ("wakatime", ["wakatime"], r"waka_[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}", "waka_00000000-0000-4000-8000-00000000dead"),
    ("zapier", ["zapier"], r"https://hooks\.zapier\.com/hooks/catch/[0-9]+/[a-z0-9]+/?", "https://hooks.zapier.com/hooks/catch/0000000/fake0demo/"),
    ("cohere", ["cohere", "co_api_key"], "alnum40", None),
    ("mistral", ["mistral"], "alnum32", None),
    ("together", ["together"], "hex64", None),
    ("gemini", ["gemini_api_key", "gemini_key"], r"AIza[A-Za-z0-9_-]{35}", "AIzaFAKE000000000000000000000000000DEMO"),
    ("azure-openai", ["azure_openai", "azureopenai", "openai_api_key_azure"], "hex32", None),
    ("azure-search", ["search_api_key", "azuresearch"], "alnum52", None),
    ("azure-storage", ["azure_storage_key", "storage_account_key", "azurestorage"], "b64-86==", None),
    ("aws-session", ["aws_session_token"], "b64-100+", None),
    ("discord-bot", ["discord"], r"[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}", "MFAKE0000000000000000DEMO.FAKE00.FAKE0000000000000000000000DEMO"),
    ("discord-client-secret", ["discord_client_secret", "discord_secret"], "alnum-32", None),
    ("telegram-bot-keyed", ["telegram_token", "tg_token"], r"[0-9]{8,10}:[A-Za-z0-9_-]{35}", "1234567890:FAKEfakeFAKEfakeFAKEfakeFAKEfakDEMO"),
    ("firebase", ["firebase", "fcm_server_key"], r"AAAA[A-Za-z0-9_-]{7}:[A-Za-z0-9_-]{140}", "AAAAFAKE000:FAKE" + "0" * 132 + "DEMO"),
    ("mongodb-atlas", ["atlas_private_key", "mongodb_atlas"], "uuid", None),
    ("elastic", ["elastic_api_key", "elasticsearch_api_key", "es_api_key"], "b64-60", None),
    ("redis-cloud", ["redis_api_key", "rediscloud"], "alnum50", None),
    ("upstash", ["upstash"], "alnum-50", None),
    ("algolia-admin", ["algolia_admin"], "hex32", None),
    ("amplitude", ["amplitude"], "hex32", None),
    ("bugsnag", ["bugsnag"], "hex32", None),
    ("circleci-legacy", ["circle_token", "circleci"], "hex40", None),
    ("codecov", ["codecov"], "uuid", None),
    ("coveralls", ["coveralls"], "alnum37", None),
    ("drone", ["drone_token"], "alnum32", None),
    ("gitguardian", ["gitguardian", "gg_token"], "alnum-69", None),
    ("honeycomb", ["honeycomb"], "alnum32", None),
    ("logdna", ["logdna", "mezmo"], "hex32", None),
    ("loggly", ["loggly"], "uuid", None),
    ("logzio", ["logzio"], "alnum32", None),
    ("mux", ["mux_token"], "alnum-75", None),
    ("nexmo", ["nexmo", "vonage"], "alnum16", None),
    ("plaid", ["plaid"], "hex30", None),
    ("plivo", ["plivo"], "alnum40", None),
    ("sinch", ["sinch"], "hex32", None),
    # added in scan2
    ("codeclimate", ["codeclimate", "cc_test_reporter_id"], "hex64", None),
    ("wandb", ["wandb"], "hex40", None),
    ("sentry-token", ["sentry_auth_token", "sentry_token", "sentry_key"], "hex64", None),
    ("npm-legacy", ["_authtoken", "npm_token"], "uuid", None),
    ("packagecloud", ["packagecloud"], "hex48", None),
    ("cloudsmith", ["cloudsmith"], "hex40", None),
    ("paypal", ["paypal"], "alnum-80", None),
    ("splunk", ["splunk_hec", "splunk_token", "hec_token"], "uuid", None),
]

SHAPES = {"hex": "[a-f0-9]", "HEX": "[A-F0-9]", "alnum": "[A-Za-z0-9]", "alnum-": "[A-Za-z0-9_-]",
          "lower": "[a-z0-9]", "b64-": "[A-Za-z0-9+/]"}

def shape(spec):
    import re as _re
    if spec == "uuid":
        return cls_regex("uuid", 0), "00000000-0000-4000-8000-00000000dead"
    if spec == "b64-86==":
        return "[A-Za-z0-9+/]{86}==", fake_body(86, "alnum") + "=="
    if spec == "b64-100+":
        return "[A-Za-z0-9+/=]{100,}", fake_body(120, "alnum")
    m = _re.fullmatch(r"(hex|HEX|alnum-|alnum|lower|b64-)(\d+)", spec)
    if not m:
        return None
    c, n = m.group(1), int(m.group(2))
    fc = {"alnum-": "alnum", "b64-": "alnum"}.get(c, c)
    return SHAPES[c] + "{" + str(n) + "}", fake_body(n, fc)

# Hard negatives of keyed rules: values other products give the same name.
EXTRA_NEGATIVES = {
    "segment": ['{"SegmentId": "' + fake_body(32, "hex") + '", "ApplicationId": "' + fake_body(32, "hex") + '"}',
                "aws pinpoint get-segment --segment-id " + fake_body(32, "hex")],
}

for (prov, kws, spec, example) in KEYED:
    s = shape(spec)
    if s is None:
        value_re, ex = spec, example
    else:
        value_re, ex = s
    kw_alt = "|".join(k.replace(".", r"\.") for k in kws)
    pattern = (r"(?i:" + kw_alt + r")[\w.-]{0,24}(?:['\"\]])*(?:\s{0,3}(?::=|=>|=|:)\s{0,3}|\s{1,3})['\"`]?(" + value_re
               + r")(?:[^A-Za-z0-9_+/-]|$)")
    rid = prov + ".keyed"
    name = prov.replace("-", " ").title() + " credential in an assignment"
    k0 = kws[0].upper().replace(".", "_")
    emit("keyed", rid, prov.split("-")[0], name, pattern, kws,
         [f'{k0}_KEY="{ex}"', f"{kws[0]}_token: {ex}"],
         [f'{k0}_KEY="${{{k0}_KEY}}"', f"# set {kws[0]} key here: <YOUR_API_KEY>"]
         + EXTRA_NEGATIVES.get(prov, []),
         window=400, before=2, ignore_case=True)

# --- name-keyed credentials (issue 18, breadth): most SaaS APIs document their key only as "an
# API key" (a random string of no fixed shape), so what marks one is where it sits: a name
# that says both the provider and that it is a credential (`MAILERLITE_API_KEY=`,
# `bugsnag secret ...`), then a value that passes the generic rules' shape checks (not code,
# not a placeholder, entropy). Medium confidence: nothing confirms the format. Names that are
# also common English or programming words (line, front, column, daily, square, box, ...)
# are left out: their keyed rules above, if any, need the provider's own value shape.
NAME_KEYED = [
    # AI / LLM APIs
    "assemblyai", "clarifai", "cohere", "deepai", "deepgram", "deepseek", "detectlanguage", "edenai",
    "elevenlabs", "fireworks", "groq", "huggingface", "langchain", "langsmith", "mistral",
    "monkeylearn", "paralleldots", "perplexity", "pinecone", "replicate", "sigopt", "speechtext",
    "voicegain", "wandb", "happyscribe", "dandelion", "uclassify", "lexigram", "nightfall",
    "azure_openai", "azureopenai", "openrouter", "anthropic", "tavily", "cerebras",
    # cloud & hosting
    "alibaba", "aliyun", "anypoint", "auth0", "borgbase", "buddyns", "cloudflare", "cloudimage",
    "digitalocean", "doppler", "ecostruxure", "eagleeye", "gcp", "heroku", "ibmcloud", "imagekit",
    "jumpcloud", "loginradius", "netlify", "okta", "salesforce", "scaleway", "tencent", "thingsboard",
    "vercel", "vultr", "yandex", "zerotier", "linode", "databricks", "adobe", "adafruit", "blynk",
    "ngrok", "pulumi", "terraform", "truenas",
    # source hosting & CI/CD
    "atlassian", "bitbucket", "bitbar", "blazemeter", "buildkite", "circleci", "codacy", "codeclimate",
    "codemagic", "coveralls", "detectify", "droneci", "gitlab", "gitter", "jenkins", "jira",
    "jupiterone", "knapsack", "launchdarkly", "loadmill", "optimizely", "postman", "qase",
    "scrutinizer", "sonar", "sourcegraph", "stackhawk", "travis", "azure_devops", "azuredevops",
    "snyk", "runscope", "dockerhub", "sentry",
    # databases & data
    "aiven", "airtable", "algolia", "confluent", "kafka", "fulcrum", "impala", "qubole", "rockset",
    "snowflake", "stitchdata", "swiftype", "planetscale", "supabase", "mongodb", "redis", "datagov",
    "data.gov",
    # payments & commerce
    "baremetrics", "braintree", "chartmogul", "coinbase", "commercejs", "gocardless", "gumroad",
    "lemonsqueezy", "loyverse", "lunchmoney", "moonclerk", "oanda", "paydirt", "paymongo", "paypal",
    "paystack", "plaid", "razorpay", "requestfinance", "snipcart", "storecove", "stripe", "taxjar",
    "tradier", "transferwise", "youneedabudget", "ynab", "finicity", "shopify", "pagarme",
    # messaging & chat
    "apifonica", "ayrshare", "d7network", "discord", "disqus", "documo", "flickr", "helpcrunch",
    "instabot", "intercom", "linenotify", "mailjet", "mesibo", "messagebird", "nexmo", "onesignal",
    "plivo", "pushbullet", "pubnub", "sendbird", "sinch", "slack", "telegram", "telnyx", "twilio",
    "twitch", "twitter", "tyntec", "vonage", "voodoosms", "zapier", "linkedin", "facebook",
    # email
    "convertkit", "debounce", "dyspatch", "elasticemail", "getemail", "getresponse", "kickbox",
    "lemlist", "mailboxlayer", "mailchimp", "mailerlite", "mailgun", "mailmodo", "mailsac",
    "mandrill", "mixmax", "moosend", "omnisend", "pepipost", "postageapp", "postmark", "reachmail",
    "sendgrid", "sendinblue", "brevo", "sparkpost", "verimail", "zerobounce", "netcore",
    # observability & ops
    "airbrake", "appoptics", "atera", "betterstack", "bugsnag", "checkly", "databox", "datadog",
    "dareboost", "dynatrace", "fullstory", "geckoboard", "grafana", "gtmetrix", "honeycomb",
    "klipfolio", "loggly", "logz", "newrelic", "new_relic", "opsgenie", "pagerduty", "rollbar",
    "splunk", "statuscake", "statuspal", "statuspage", "uptimerobot", "apimetrics", "sumologic",
    # package registries
    "artifactory", "cloudsmith", "crowdin", "gradle", "lokalise", "nuget", "packagecloud", "pypi",
    "rubygems", "versioneye", "jfrog",
    # other SaaS agents are often given keys for
    "asana", "notion", "zendesk", "hubspot", "freshdesk", "trello", "clickup", "mapbox", "contentful",
    "figma", "miro", "calendly", "typeform", "docusign", "dropbox", "mixpanel", "amplitude",
    "segment_", "pusher", "ably", "algolia", "firebase", "auth0", "clerk", "workos",
    # short names and spellings that are the provider's own abbreviation (NAME:provider)
    "dd_:datadog", "dd-:datadog", "pd_:pagerduty", "fb:facebook", "ibm:ibmcloud",
    "azure devops:azuredevops", "azure_search:azuresearch",
]
CRED = r"key|secret|token|passwd|password|pass|pwd|access|private|auth|credential|apikey|pat\b"
groups = {}
for name in NAME_KEYED:
    name, _, prov = name.partition(":")
    prov = prov or name.strip("_").replace("_", "").replace(".", "")
    groups.setdefault(prov, [])
    if name not in groups[prov]:
        groups[prov].append(name)
for prov, names in groups.items():
    rid = prov + ".name-keyed"
    kw = "|".join(n.replace(".", r"\.") for n in names)
    pattern = (r"(?:^|[^A-Za-z])(?i:" + kw + r")[\w. \t-]{0,24}?(?i:" + CRED + r")[\w.-]{0,20}?"
               + r"(?:\s{1,2}(?i:key|token|code|secret)\b)?[\\'\"\]]*"
               + r"(?:\s{0,3}(?::=|=>|=|:)\s{0,16}|\s{1,3}|-)[\\'\"`]{0,2}([A-Za-z0-9_+/=.%-]{16,1024})(?:[^A-Za-z0-9_+/=.%-]|$)")
    name = names[0].partition(":")[0]
    up = name.strip("_").upper().replace(" ", "_") if "." not in name else name
    ex = "FAKE0demo1Zx7wLp2Vb8Nc4Rs6Yh1Ju5"
    emit("saas", rid, prov, f"{name.strip('_-')} credential by its name", pattern, names,
         [f'{up}_API_KEY="{ex}"', f"{name} secret {ex}"],
         [f'{up}_API_KEY="${{{up}_API_KEY}}"', f"{up}_TOKEN={up.lower()}_token_value_here",
          f"{name}_key = config.get_secret_value()", f"{name} token abcdefabcdefabcdefab",
          f"{up}_CLIENT_ID={ex}", f"cargo {name} --clippy --{name}-path gl-code-quality-report.json"],
         entropy=3.0, confidence="medium", window=1100, before=2, ignore_case=True, value_checks=True)

for f, rules in out.items():
    with open(f"rules/{f}.toml", "w") as fh:
        fh.write(f"# Generated by tools/gen_rules.py ({f}). Every example is fake.\n\n")
        fh.write("\n\n".join(rules) + "\n")
print(sum(len(r) for r in out.values()), "generated rules")
