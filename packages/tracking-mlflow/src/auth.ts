/**
 * Authentication, in the shape of the official MLflow TypeScript SDK: an `AuthProvider` returns the
 * Authorization header for each request (so tokens can be refreshed by a custom provider).
 *
 * From the environment we follow the Python client's code (mlflow/utils/rest_utils.py), not its docstring:
 * `MLFLOW_TRACKING_USERNAME` + `MLFLOW_TRACKING_PASSWORD` (Basic) win over `MLFLOW_TRACKING_TOKEN` (Bearer),
 * so a machine configured for the Python client behaves the same with ours.
 */

export interface AuthProvider {
  authenticate(): Promise<{ authorizationHeader?: string }>;
}

export class BasicAuthProvider implements AuthProvider {
  private readonly header: string;
  constructor(username: string, password: string) {
    this.header = `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
  }
  async authenticate(): Promise<{ authorizationHeader: string }> {
    return { authorizationHeader: this.header };
  }
}

export class BearerTokenProvider implements AuthProvider {
  constructor(private readonly token: string) {}
  async authenticate(): Promise<{ authorizationHeader: string }> {
    return { authorizationHeader: `Bearer ${this.token}` };
  }
}

export const noAuth: AuthProvider = {
  async authenticate() {
    return {};
  },
};

/** Basic from username/password when both are set, else Bearer from the token, else none. */
export function authFromEnv(env: NodeJS.ProcessEnv = process.env): AuthProvider {
  const username = env.MLFLOW_TRACKING_USERNAME;
  const password = env.MLFLOW_TRACKING_PASSWORD;
  if (username && password !== undefined && password !== '') return new BasicAuthProvider(username, password);
  if (env.MLFLOW_TRACKING_TOKEN) return new BearerTokenProvider(env.MLFLOW_TRACKING_TOKEN);
  return noAuth;
}
